//! The GPU context: device, queue, limits, pipeline cache and the device's health.

use std::sync::{Arc, Mutex, OnceLock};

use crate::dispatch::{Intensity, LaunchConfig};
use crate::pipeline::PipelineCache;
use crate::{Error, Result};

/// How [`Gpu::with_options`] picks and configures its device.
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// Backends to search; `None` reads `WGPU_BACKEND` (e.g. `vulkan`, `gl`) and otherwise searches all.
    pub backends: Option<wgpu::Backends>,
    /// Adapter preference; the default reads `WGPU_POWER_PREF` and otherwise prefers high performance.
    pub power_preference: wgpu::PowerPreference,
    /// Request a smaller storage-binding limit than the adapter's (tests use it to exercise chunked dispatch).
    pub max_storage_binding_bytes: Option<u64>,
    /// Workgroup size and work per thread; `None` picks [`LaunchConfig::for_device`] per
    /// kernel [`Intensity`]; `Some` applies to every elementwise kernel.
    pub launch: Option<LaunchConfig>,
    /// How kernels access f16 tensors.
    pub f16_storage: F16Storage,
}

/// How the kernels access tensors whose every operand is f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum F16Storage {
    /// Time both paths once, on first use, and keep the faster (native only where the adapter has
    /// `SHADER_F16`).
    #[default]
    Auto,
    /// Two values packed in each `u32`, converted with integer code: works on every adapter.
    Packed,
    /// WGSL's native `f16`; where the adapter lacks `SHADER_F16` the packed path runs instead.
    Native,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: None,
            power_preference: wgpu::PowerPreference::from_env()
                .unwrap_or(wgpu::PowerPreference::HighPerformance),
            max_storage_binding_bytes: None,
            launch: None,
            f16_storage: F16Storage::Auto,
        }
    }
}

/// A device and queue with actgpu's pipeline cache. Cheap to clone (shared inside).
///
/// Create one with [`Gpu::new`], or wrap the host application's own device with [`Gpu::from_device`].
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<Inner>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    launch: LaunchConfig,
    streaming_launch: LaunchConfig,
    f16_storage: F16Storage,
    f16_native: OnceLock<bool>,
    cache: PipelineCache,
    /// The shared scratch buffer of [`Gpu::scratch`], grown to the largest size asked.
    scratch: Mutex<Option<wgpu::Buffer>>,
    /// The buffer of [`Gpu::one_f32`], uploaded on first use.
    one: OnceLock<wgpu::Buffer>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

/// Optional features actgpu uses when the adapter has them (`SUBGROUP`: the matmul kernel of CPU adapters,
/// [`crate::MatmulKernel::Subgroup`]).
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

impl Gpu {
    /// Creates a device on the adapter chosen by `WGPU_BACKEND` and power preference. Blocks.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// Like [`Gpu::new`] with explicit options. Blocks.
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(options))
    }

    /// Creates a device asynchronously.
    pub async fn new_async(options: GpuOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = options.backends {
            desc.backends = b;
        }
        let backends = format!("{:?}", desc.backends);
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: options.power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| Error::NoAdapter {
                backends,
                reason: e.to_string(),
            })?;
        let mut limits = adapter.limits();
        if let Some(max) = options.max_storage_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(max);
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("actgpu"),
                required_features: adapter.features() & WANTED_FEATURES,
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::RequestDevice {
                reason: e.to_string(),
            })?;
        let gpu = Self::build(device, queue, options.launch, options.f16_storage);
        // Only a device we created gets our handlers: a host app's device keeps its own.
        let lost = gpu.inner.lost.clone();
        gpu.inner
            .device
            .set_device_lost_callback(move |reason, msg| {
                *lost.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{reason:?}: {msg}"));
            });
        let uncaptured = gpu.inner.uncaptured.clone();
        gpu.inner
            .device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                uncaptured
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.to_string());
            }));
        Ok(gpu)
    }

    /// Wraps the host application's device and queue. actgpu creates nothing global and leaves the device's
    /// error and device-lost handlers as the host set them.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::build(device, queue, None, F16Storage::Auto)
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        launch: Option<LaunchConfig>,
        f16_storage: F16Storage,
    ) -> Self {
        let info = device.adapter_info();
        let limits = device.limits();
        let streaming_launch = launch.unwrap_or_else(|| {
            LaunchConfig::for_device(info.device_type, Intensity::Streaming).fit(&limits)
        });
        let launch = launch.unwrap_or_else(|| LaunchConfig::for_device_type(info.device_type));
        Gpu {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                launch,
                streaming_launch,
                f16_storage,
                f16_native: OnceLock::new(),
                cache: PipelineCache::default(),
                scratch: Mutex::default(),
                one: OnceLock::new(),
                lost: Arc::default(),
                uncaptured: Arc::default(),
            }),
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter's name, backend and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The device's limits.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Workgroup size and work per thread of the memory-bound kernels.
    pub fn launch_config(&self) -> LaunchConfig {
        self.inner.launch
    }

    /// The launch shape of elementwise kernels of this intensity: [`GpuOptions::launch`] for both where it was
    /// given, otherwise the adapter type's default ([`LaunchConfig::for_device`]).
    pub fn launch_for(&self, intensity: Intensity) -> LaunchConfig {
        match intensity {
            Intensity::Streaming => self.inner.streaming_launch,
            Intensity::Arithmetic => self.inner.launch,
        }
    }

    /// True when kernels whose operands are all f16 use WGSL's native `f16` rather than packed words: never
    /// without `SHADER_F16`; with it, as [`GpuOptions::f16_storage`] says (for `Auto`, the faster of the two,
    /// timed once on first call).
    pub fn f16_native(&self) -> bool {
        if !self
            .device()
            .features()
            .contains(wgpu::Features::SHADER_F16)
        {
            return false;
        }
        match self.inner.f16_storage {
            F16Storage::Packed => false,
            F16Storage::Native => true,
            F16Storage::Auto => *self
                .inner
                .f16_native
                .get_or_init(|| crate::ops::activation::native_f16_is_faster(self)),
        }
    }

    /// The pipeline cache.
    pub fn pipelines(&self) -> &PipelineCache {
        &self.inner.cache
    }

    /// A storage buffer of at least `size` bytes for intermediate results that one recorded operation writes and
    /// reads back before it ends (the per-block partial sums of the column reductions). Every operation gets the
    /// same buffer, grown to the largest size asked: the work runs in submission order on the one queue and wgpu
    /// places a barrier between dispatches that write a buffer, so an operation never reads another's partials.
    /// Reusing it saves a fresh allocation, and wgpu's zero-fill of it, on every call.
    pub(crate) fn scratch(&self, size: u64) -> wgpu::Buffer {
        let mut slot = self.inner.scratch.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(b) if b.size() >= size => b.clone(),
            _ => {
                let b = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("actgpu.scratch"),
                    size: size.max(4).next_multiple_of(256),
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                });
                *slot = Some(b.clone());
                b
            }
        }
    }

    /// A one-element f32 tensor holding 1 (the constant operand of [`crate::DzMode::Fused`]'s db product),
    /// uploaded once per context rather than on every call. Kernels only read it.
    pub(crate) fn one_f32(&self) -> Result<crate::Tensor> {
        let buffer = match self.inner.one.get() {
            Some(b) => b.clone(),
            None => {
                let uploaded = self.upload(&[1.0f32])?.buffer().clone();
                self.inner.one.get_or_init(|| uploaded).clone()
            }
        };
        crate::Tensor::from_buffer(self, buffer, &[1], crate::DType::F32)
    }

    /// True when both handles share one context.
    pub fn same_context(&self, other: &Gpu) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// One line naming the adapter: `name (backend, driver driver_info)`.
    pub fn adapter_line(&self) -> String {
        let i = &self.inner.info;
        format!(
            "{} ({:?}, {} {})",
            i.name, i.backend, i.driver, i.driver_info
        )
    }

    /// `Err(DeviceLost)` once the device has been lost; later calls would silently do nothing.
    pub fn check_lost(&self) -> Result<()> {
        match &*self.inner.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(reason) => Err(Error::DeviceLost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn take_uncaptured(&self, op: &'static str) -> Result<()> {
        let mut errors = self
            .inner
            .uncaptured
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.join("; ");
        errors.clear();
        Err(Error::Wgpu { op, message })
    }

    /// Records work with `record` into a fresh encoder, submits it and waits for the device to finish. wgpu
    /// validation and out-of-memory errors are captured and returned as [`Error::Wgpu`].
    pub fn submit_and_wait(
        &self,
        op: &'static str,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        self.check_lost()?;
        let device = &self.inner.device;
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(op) });
        let recorded = record(&mut encoder);
        if recorded.is_ok() {
            self.inner.queue.submit([encoder.finish()]);
        }
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        recorded?;
        if let Some(err) = oom.or(validation) {
            return Err(Error::Wgpu {
                op,
                message: err.to_string(),
            });
        }
        self.wait()?;
        self.take_uncaptured(op)
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Wgpu {
                op: "poll",
                message: e.to_string(),
            })?;
        self.check_lost()
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_line())
            .field("launch", &self.inner.launch)
            .finish()
    }
}
