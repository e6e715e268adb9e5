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
    /// Request a smaller `max_compute_workgroups_per_dimension` than the adapter's (tests use it to exercise the
    /// grids that continue along a second or third dimension at modest sizes).
    pub max_workgroups_per_dimension: Option<u32>,
    /// Request at most these limits: each of the adapter's limits is capped at this value (the worse of the two,
    /// [`wgpu::Limits::or_worse_values_from`]). `Some(`[`Gpu::MINIMUM_LIMITS`]`)` makes any adapter behave like
    /// the smallest device actgpu runs on, which is how the tests prove the kernels fit one.
    pub cap_limits: Option<wgpu::Limits>,
    /// Workgroup size and work per thread; `None` picks [`LaunchConfig::for_device`] per
    /// kernel [`Intensity`]; `Some` applies to every elementwise kernel.
    pub launch: Option<LaunchConfig>,
    /// How kernels access f16 tensors.
    pub f16_storage: F16Storage,
    /// Rows per row block of the column reductions: the rows one thread of bias + activation forward walks on the
    /// row grid (`bias_forward_rows`), and the rows behind each per-block partial column sum of the fused bias
    /// backward and of the other column sums built on the same row blocks (the separate bias-gradient pass, the
    /// learnable activations' parameter gradients). Fewer rows mean more, smaller partial sums to add up; more rows
    /// mean fewer workgroups in flight. `None` keeps the adapter type's defaults: 8 on CPU adapters; elsewhere 32
    /// for the reductions and 2 for the forward, which sums nothing (both measured on an H200, BENCHMARKS.md);
    /// `Some(0)` counts as 1. Where a tensor has more rows than the dispatch grid holds at this block height, its
    /// blocks grow to fit. [`Gpu::reduction_rows`] gives the value in effect.
    pub reduction_rows: Option<usize>,
    /// The matmul kernel of every product, dense layer and network on this context; `None` picks
    /// [`crate::MatmulKernel::for_gpu`]'s per-adapter choice. A kernel the device cannot run (subgroups without
    /// `SUBGROUP`) falls back as that kernel's documentation says.
    pub matmul_kernel: Option<crate::MatmulKernel>,
    /// Classes (the logits' row length) from which softmax cross-entropy gives each row a workgroup of its own
    /// instead of a thread; `None` keeps the adapter type's default: 256 on GPUs, where a thread per row leaves a
    /// batch of 256 rows to 256 threads walking every class in turn; 16,384 on CPU adapters, where the workgroup
    /// per row measured 5 to 25 times slower (its barriers, BENCHMARKS.md) but a thread's walk over more classes
    /// would pass the driver's loop limit ([`Gpu::loop_limited`]). The row statistics of
    /// [`crate::SoftmaxKind`] take the same choice (on a loop-limited adapter the workgroups from 26,000 columns
    /// whatever this says). [`Gpu::cross_entropy_wide_rows`] gives the value in effect.
    pub cross_entropy_wide_rows: Option<usize>,
}

/// How the kernels access tensors whose every operand is f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum F16Storage {
    /// Time both paths once per kernel intensity, on first use, and keep the faster; native only where the
    /// adapter has `SHADER_F16` and its conversion rounds to nearest even
    /// ([`Gpu::native_f16_rounds_to_nearest_even`]).
    #[default]
    Auto,
    /// Two values packed in each `u32`, converted with integer code: works on every adapter.
    Packed,
    /// WGSL's native `f16`, whichever way the device's conversion rounds; where the adapter lacks `SHADER_F16`
    /// the packed path runs instead.
    Native,
}

/// Most work units one workgroup of a [`GpuOptions::launch`] shape may cover (threads times units per thread).
const MAX_UNITS_PER_WORKGROUP: u64 = 1 << 24;

/// Checks a caller's launch shape: at least 1 thread and 1 unit each, and (with the device's `limits`) no more
/// threads than a workgroup may have.
fn check_launch(launch: Option<LaunchConfig>, limits: Option<&wgpu::Limits>) -> Result<()> {
    let Some(l) = launch else { return Ok(()) };
    if l.workgroup_size == 0 || l.units_per_thread == 0 {
        return Err(Error::InvalidArgument {
            op: "GpuOptions::launch",
            reason: format!(
                "{}x{}: the workgroup size and the units per thread must be at least 1",
                l.workgroup_size, l.units_per_thread
            ),
        });
    }
    // The kernels index a workgroup's units in u32 (`WG * PER_THREAD`, twice that in 16-byte words): far past
    // any useful shape, but a caller's mistake there would wrap silently.
    if u64::from(l.workgroup_size) * u64::from(l.units_per_thread) > MAX_UNITS_PER_WORKGROUP {
        return Err(Error::InvalidArgument {
            op: "GpuOptions::launch",
            reason: format!(
                "{}x{}: at most {MAX_UNITS_PER_WORKGROUP} units per workgroup",
                l.workgroup_size, l.units_per_thread
            ),
        });
    }
    match limits {
        Some(limits) => crate::dispatch::check_workgroup_threads(limits, l.workgroup_size),
        None => Ok(()),
    }
}

/// Fails unless a device of `limits` can run every kernel: at least [`Gpu::MINIMUM_LIMITS`]' storage buffers per
/// shader stage, invocations per workgroup (in all and along x) and bytes of workgroup memory.
fn check_minimum_limits(limits: &wgpu::Limits) -> Result<()> {
    let min = &Gpu::MINIMUM_LIMITS;
    let checks = [
        (
            "max_storage_buffers_per_shader_stage",
            limits.max_storage_buffers_per_shader_stage,
            min.max_storage_buffers_per_shader_stage,
        ),
        (
            "max_compute_invocations_per_workgroup",
            limits.max_compute_invocations_per_workgroup,
            min.max_compute_invocations_per_workgroup,
        ),
        (
            "max_compute_workgroup_size_x",
            limits.max_compute_workgroup_size_x,
            min.max_compute_workgroup_size_x,
        ),
        (
            "max_compute_workgroup_storage_size",
            limits.max_compute_workgroup_storage_size,
            min.max_compute_workgroup_storage_size,
        ),
    ];
    for (limit, have, need) in checks {
        if have < need {
            return Err(Error::LimitExceeded {
                limit,
                max: u64::from(have),
                requested: u64::from(need),
            });
        }
    }
    // Not the minimum's 65,535 (contexts may cap the grid far lower, as the tests' 32), but a grid of none.
    if limits.max_compute_workgroups_per_dimension == 0 {
        return Err(Error::LimitExceeded {
            limit: "max_compute_workgroups_per_dimension",
            max: 0,
            requested: 1,
        });
    }
    Ok(())
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: None,
            power_preference: wgpu::PowerPreference::from_env()
                .unwrap_or(wgpu::PowerPreference::HighPerformance),
            max_storage_binding_bytes: None,
            max_workgroups_per_dimension: None,
            cap_limits: None,
            launch: None,
            f16_storage: F16Storage::Auto,
            reduction_rows: None,
            matmul_kernel: None,
            cross_entropy_wide_rows: None,
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
    /// The f16 path of each [`Intensity`] under [`F16Storage::Auto`] (streaming, arithmetic), timed on first use.
    f16_native: [OnceLock<bool>; 2],
    /// The answer of [`Gpu::flushes_subnormals`], probed on first use.
    flushes_subnormals: OnceLock<bool>,
    /// The answer of [`Gpu::native_f16_rounds_to_nearest_even`], probed on first use.
    native_f16_rounding: OnceLock<bool>,
    /// Rows per row block of the column reductions ([`GpuOptions::reduction_rows`], at least 1).
    reduction_rows: usize,
    /// Rows per thread of bias + activation forward on the row grid (the same option, else its own default).
    bias_forward_rows: usize,
    /// [`GpuOptions::matmul_kernel`].
    matmul_kernel: Option<crate::MatmulKernel>,
    /// [`Gpu::cross_entropy_wide_rows`].
    cross_entropy_wide_rows: usize,
    cache: PipelineCache,
    /// The shared scratch buffer of [`Gpu::scratch`], grown to the largest size asked.
    scratch: Mutex<Option<wgpu::Buffer>>,
    /// The buffer of [`Gpu::one_f32`], uploaded on first use.
    one: OnceLock<wgpu::Buffer>,
    /// The buffers of [`Gpu::unused_bindings`], created on first use.
    unused: OnceLock<(wgpu::Buffer, wgpu::Buffer)>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

/// Threads of the reductions' workgroups where the device allows ([`Gpu::reduction_workgroup_size`]); the
/// shaders' workgroup arrays hold this many sums.
pub(crate) const REDUCTION_WORKGROUP: u32 = 256;

/// Optional features actgpu uses when the adapter has them (`SUBGROUP`: the matmul kernel of CPU adapters,
/// [`crate::MatmulKernel::Subgroup`]).
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// The adapters to try, in order: with `name_filter` (`WGPU_ADAPTER_NAME`), those whose name contains it (case
/// insensitive), the preferred one first; otherwise the preferred one, then the rest as enumerated.
fn adapter_candidates(
    preferred: Option<wgpu::Adapter>,
    others: Vec<wgpu::Adapter>,
    name_filter: Option<&str>,
) -> Vec<wgpu::Adapter> {
    let key = |a: &wgpu::Adapter| {
        let i = a.get_info();
        (
            i.name,
            i.backend,
            i.device,
            i.vendor,
            i.driver,
            i.device_pci_bus_id,
        )
    };
    // The enumeration lists the preferred adapter too: drop that one entry (only one, so that an identical
    // twin of it, on another bus, stays a candidate).
    let mut first = preferred.as_ref().map(key);
    let mut out: Vec<wgpu::Adapter> = preferred.into_iter().collect();
    for a in others {
        if first.is_some() && first == Some(key(&a)) {
            first = None;
        } else {
            out.push(a);
        }
    }
    match name_filter.map(str::to_lowercase) {
        Some(name) => out
            .into_iter()
            .filter(|a| a.get_info().name.to_lowercase().contains(&name))
            .collect(),
        None => out,
    }
}

/// The limits the kernels plan with: the device's, with the storage-binding size capped at [`MAX_BINDING_BYTES`]
/// and rounded down to a multiple of [`binding_granule`]. The kernels index elements and words with u32
/// arithmetic, sound for bindings below 2^31 bytes, which is what wgpu gives on Vulkan and DX12; Metal reports its
/// whole buffer length (tens of GiB). Larger tensors run in chunks or are refused as `LimitExceeded`, as past any
/// other binding limit. The rounding makes the limit hold every buffer whose unpadded bytes it holds (buffers are
/// padded to 32 bytes, [`crate::padded_bytes`]) and end where a chunk may start: with an odd limit (2^31 - 1
/// in earlier versions) a pass of rows sized on its bytes could pad past the limit and be refused.
fn planned_limits(mut limits: wgpu::Limits) -> wgpu::Limits {
    let granule = binding_granule(&limits);
    limits.max_storage_buffer_binding_size = limits
        .max_storage_buffer_binding_size
        .min(MAX_BINDING_BYTES)
        / granule
        * granule;
    limits
}

/// What the planned storage-binding size is a multiple of: the device's storage offset alignment or the
/// 32-byte padding of every buffer, whichever is larger (both are powers of two).
fn binding_granule(limits: &wgpu::Limits) -> u64 {
    u64::from(limits.min_storage_buffer_offset_alignment).max(32)
}

/// The largest storage binding actgpu uses, whatever the device allows: `2^31 - 256` bytes, the largest multiple
/// of every storage offset alignment wgpu allows (at most 256) below 2^31 (see [`Gpu::limits`]).
pub const MAX_BINDING_BYTES: u64 = (1 << 31) - 256;

impl Gpu {
    /// The smallest device limits actgpu's kernels run within: those OpenGL ES 3.1 guarantees (wgpu's
    /// [`wgpu::Limits::downlevel_defaults`]: 128 MiB bindings, 16,352 bytes of workgroup memory; and 128
    /// invocations per workgroup, 128 x 128 x 64, where WebGPU guarantees 256), except storage buffers per shader
    /// stage: the matmul kernel binds 6 (A, B, C, bias, Z out, Z in) where GLES 3.1 guarantees 4 and WebGPU 8.
    /// [`Gpu::new`] refuses a device with fewer storage buffers, invocations or workgroup memory, and
    /// [`GpuOptions::cap_limits`] with these limits makes any adapter run as such a device (the tests and
    /// `validate --minimum-limits` do).
    pub const MINIMUM_LIMITS: wgpu::Limits = wgpu::Limits {
        max_storage_buffers_per_shader_stage: 6,
        max_compute_invocations_per_workgroup: 128,
        max_compute_workgroup_size_x: 128,
        max_compute_workgroup_size_y: 128,
        max_compute_workgroup_size_z: 64,
        ..wgpu::Limits::downlevel_defaults()
    };

    /// Creates a device on the adapter chosen by `WGPU_BACKEND` (which backends), `WGPU_ADAPTER_NAME` (a part of
    /// the adapter's name, if set) and the power preference (`WGPU_POWER_PREF`); where that adapter cannot make a
    /// device, or its limits are below [`Gpu::MINIMUM_LIMITS`], the next one that can. Blocks. A `WGPU_BACKEND`
    /// or `WGPU_POWER_PREF` that wgpu would not understand (a misspelling) is [`Error::InvalidArgument`], not
    /// silently the default ([`Gpu::with_options`] too, where the options leave the backends unset or the power
    /// preference at [`GpuOptions::default`]'s high performance, which is where the variables are read).
    ///
    /// Each call makes its own `wgpu::Instance`, so the rule of [`Gpu::from_device`] holds between two contexts
    /// made here too: an encoder of one context's device given to another's `record_*` calls or
    /// [`Gpu::submit`] cannot be told apart from one of its own (wgpu panics, or uses whichever of its own
    /// resources has the same index). Clone one `Gpu` rather than making two where their work meets.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// Like [`Gpu::new`] with explicit options. Blocks.
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(options))
    }

    /// Creates a device asynchronously.
    pub async fn new_async(options: GpuOptions) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidArgument {
            op: "Gpu::with_options",
            reason: reason.into(),
        };
        if options.max_workgroups_per_dimension == Some(0) {
            return Err(invalid("max_workgroups_per_dimension must be at least 1"));
        }
        check_launch(options.launch, None)?;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = options.backends {
            desc.backends = b;
        }
        let backends = format!("{:?}", desc.backends);
        let wanted = desc.backends;
        // A misspelt WGPU_BACKEND (`vulkn`) selects no backend, which would read as "no adapter found".
        if wanted.is_empty() {
            return Err(invalid(&match options.backends {
                Some(_) => "GpuOptions::backends is empty".to_string(),
                None => format!(
                    "WGPU_BACKEND={:?} names no backend wgpu knows (vulkan, gl, metal, dx12, webgpu; \
                     comma-separated)",
                    std::env::var("WGPU_BACKEND").unwrap_or_default()
                ),
            }));
        }
        // A misspelt WGPU_POWER_PREF (`hgh`) would otherwise leave the default preference in place unsaid. Where
        // the options hold another preference than that default, the caller chose it, and the variable is not read.
        if let Ok(value) = std::env::var("WGPU_POWER_PREF") {
            let defaulted = options.power_preference == wgpu::PowerPreference::HighPerformance;
            if defaulted && wgpu::PowerPreference::from_env().is_none() {
                return Err(invalid(&format!(
                    "WGPU_POWER_PREF={value:?} names no power preference wgpu knows (low, high, none); unset it \
                     to prefer high performance"
                )));
            }
        }
        let instance = wgpu::Instance::new(desc);
        let preferred = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: options.power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await;
        let preferred_error = preferred.as_ref().err().map(|e| e.to_string());
        let others = instance.enumerate_adapters(wanted).await;
        let name_filter = std::env::var("WGPU_ADAPTER_NAME").ok();
        let candidates = adapter_candidates(preferred.ok(), others, name_filter.as_deref());
        if candidates.is_empty() {
            return Err(Error::NoAdapter {
                backends,
                reason: match name_filter {
                    Some(name) => format!("no adapter's name contains WGPU_ADAPTER_NAME={name:?}"),
                    None => preferred_error.unwrap_or_else(|| "no adapter found".into()),
                },
                how_to_get_one: crate::NO_ADAPTER_HINT,
            });
        }
        // The preferred adapter first, then the others: a driver that enumerates but cannot make a device
        // (NVIDIA's EGL under GL, say) does not stop a working one from being used.
        let mut failures = Vec::new();
        let mut created = None;
        for adapter in candidates {
            let mut limits = adapter.limits();
            if let Some(cap) = &options.cap_limits {
                limits = limits.or_worse_values_from(cap);
            }
            // An adapter too small for the kernels is passed over like one that cannot make a device.
            if let Err(e) = check_minimum_limits(&limits) {
                let info = adapter.get_info();
                failures.push(format!("{} ({:?}): {e}", info.name, info.backend));
                continue;
            }
            if let Some(max) = options.max_storage_binding_bytes {
                limits.max_storage_buffer_binding_size =
                    limits.max_storage_buffer_binding_size.min(max);
            }
            if let Some(max) = options.max_workgroups_per_dimension {
                limits.max_compute_workgroups_per_dimension =
                    limits.max_compute_workgroups_per_dimension.min(max);
            }
            let requested = adapter
                .request_device(&wgpu::DeviceDescriptor {
                    label: Some("actgpu"),
                    required_features: adapter.features() & WANTED_FEATURES,
                    required_limits: limits,
                    ..Default::default()
                })
                .await;
            match requested {
                Ok(pair) => {
                    created = Some(pair);
                    break;
                }
                Err(e) => {
                    let info = adapter.get_info();
                    failures.push(format!("{} ({:?}): {e}", info.name, info.backend));
                }
            }
        }
        let (device, queue) = created.ok_or_else(|| Error::RequestDevice {
            reason: failures.join("; "),
        })?;
        check_launch(options.launch, Some(&device.limits()))?;
        // A chunk of a long tensor starts at a multiple of the offset alignment and holds whole units (32 bytes of
        // f32): a binding limit below two alignments would make every chunk larger than the limit. Whichever
        // option lowered it (max_storage_binding_bytes, or cap_limits' max_storage_buffer_binding_size).
        let bytes = device.limits().max_storage_buffer_binding_size;
        let need = 2 * u64::from(device.limits().min_storage_buffer_offset_alignment).max(32);
        if bytes < need {
            let source = match (options.max_storage_binding_bytes, &options.cap_limits) {
                (Some(b), _) if b == bytes => "max_storage_binding_bytes",
                (_, Some(_)) => {
                    "the storage binding limit (cap_limits' max_storage_buffer_binding_size)"
                }
                _ => "the adapter's storage binding limit",
            };
            return Err(invalid(&format!(
                "{source} {bytes} is below {need}, twice the device's storage offset alignment: no chunk of a \
                 long tensor would fit"
            )));
        }
        let gpu = Self::build(device, queue, &options);
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
    /// error and device-lost handlers as the host set them: errors actgpu does not scope itself, and the loss of
    /// the device, reach the host's handlers (a lost device then shows in actgpu as failed readbacks, not as
    /// [`Error::DeviceLost`]). It cannot fail, so it does not check the device against [`Gpu::MINIMUM_LIMITS`]
    /// (a kernel past its limits then fails, as [`Error::LimitExceeded`] where actgpu plans against the limit, as
    /// [`Error::Wgpu`] where wgpu finds it); [`Gpu::from_device_with_options`] checks the limits the kernels'
    /// shapes depend on (storage buffers per stage, invocations and size per workgroup, workgroup memory, a
    /// nonzero grid).
    ///
    /// Each call makes a new context: tensors of two contexts over the same device do not mix (the kernels
    /// refuse them with [`Error::DeviceMismatch`]), so wrap a device once and clone the `Gpu`. Buffers given to
    /// [`crate::Tensor::from_buffer`], and encoders given to the `record_*` calls, must be this device's: wgpu
    /// names a resource by an index into its instance's tables, so a buffer or encoder of another
    /// `wgpu::Instance` cannot be told apart from one of this device; wgpu then reads or writes whichever of
    /// this instance's buffers has that index, or panics where none does.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::build(device, queue, &GpuOptions::default())
    }

    /// [`Gpu::from_device`] with the per-context choices of `options` (launch shape, f16 path, reduction rows,
    /// matmul kernel); its device-creation fields (backends, power preference, limits) are the host's business
    /// and are ignored. A launch shape of zeros or past the device's limits is an error, and so is a device
    /// below [`Gpu::MINIMUM_LIMITS`].
    pub fn from_device_with_options(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: &GpuOptions,
    ) -> Result<Self> {
        check_minimum_limits(&device.limits())?;
        check_launch(options.launch, Some(&device.limits()))?;
        Ok(Self::build(device, queue, options))
    }

    /// The context on `device` with the per-context choices of `options` (launch shape, f16 path, reduction
    /// rows, matmul kernel); the device-creation ones (backends, power preference, limits) are the caller's business.
    fn build(device: wgpu::Device, queue: wgpu::Queue, options: &GpuOptions) -> Self {
        let info = device.adapter_info();
        let limits = planned_limits(device.limits());
        let launch = options.launch;
        // GpuOptions::reduction_rows (at least 1) for both, else each its own per-adapter default.
        let rows_or = |default: fn(wgpu::DeviceType) -> usize| {
            options
                .reduction_rows
                .map_or_else(|| default(info.device_type), |rows| rows.max(1))
        };
        let reduction_rows = rows_or(crate::ops::bias::rows_per_block);
        let bias_forward_rows = rows_or(crate::ops::bias::forward_rows_per_block);
        let streaming_launch = launch.unwrap_or_else(|| {
            LaunchConfig::for_device(info.device_type, Intensity::Streaming).fit(&limits)
        });
        let launch =
            launch.unwrap_or_else(|| LaunchConfig::for_device_type(info.device_type).fit(&limits));
        let cross_entropy_wide_rows = options
            .cross_entropy_wide_rows
            .unwrap_or_else(|| crate::ops::loss::wide_row_classes_for(info.device_type));
        Gpu {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                launch,
                streaming_launch,
                f16_storage: options.f16_storage,
                f16_native: [OnceLock::new(), OnceLock::new()],
                flushes_subnormals: OnceLock::new(),
                native_f16_rounding: OnceLock::new(),
                reduction_rows,
                bias_forward_rows,
                matmul_kernel: options.matmul_kernel,
                cross_entropy_wide_rows,
                cache: PipelineCache::default(),
                scratch: Mutex::default(),
                one: OnceLock::new(),
                unused: OnceLock::new(),
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

    /// The device's limits, with the storage-binding size capped at [`MAX_BINDING_BYTES`] (the kernels' u32
    /// index arithmetic) and rounded down to a multiple of the device's storage offset alignment and of 32.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Threads of the workgroups that reduce through a tree in workgroup memory (a loss's mean, a shared
    /// parameter's gradient, the last pass of the column sums): 256, or the largest power of two a workgroup
    /// of this device holds (128 on the smallest GLES 3.1 device). The shaders size their trees for 256.
    pub(crate) fn reduction_workgroup_size(&self) -> u32 {
        let limits = self.limits();
        // At least 32: `reduce_partials` gives each of its 32 columns WG / 32 lanes. A device below that (only a
        // host's, which `from_device` cannot refuse) then fails at the pipeline cache's size check, not in a loop
        // of zero-lane steps.
        let max = crate::dispatch::max_workgroup_threads(limits).clamp(32, REDUCTION_WORKGROUP);
        1 << max.ilog2()
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

    /// True when the arithmetic activation kernels ([`Intensity::Arithmetic`]) whose operands are all f16 use
    /// WGSL's native `f16` rather than packed words: [`Gpu::f16_native_for`] of that intensity.
    pub fn f16_native(&self) -> bool {
        self.f16_native_for(Intensity::Arithmetic)
    }

    /// True when activation kernels of `intensity` whose operands are all f16 use WGSL's native `f16` rather than
    /// packed words: never without `SHADER_F16`; with it, as [`GpuOptions::f16_storage`] says. For `Auto`, the
    /// faster of the two for that intensity, timed once on first call (leaky relu for the streaming kernels,
    /// GELU for the arithmetic ones: on an H200 native f16 is the faster for GELU and packed for relu). The
    /// timing compiles both paths' pipelines: the first f16 kernel of a context on lavapipe starts about 0.2 s
    /// later with a warm shader cache, 0.6 s with a cold one.
    pub fn f16_native_for(&self, intensity: Intensity) -> bool {
        if !self
            .device()
            .features()
            .contains(wgpu::Features::SHADER_F16)
        {
            return false;
        }
        let slot = match intensity {
            Intensity::Streaming => 0,
            Intensity::Arithmetic => 1,
        };
        match self.inner.f16_storage {
            F16Storage::Packed => false,
            F16Storage::Native => true,
            F16Storage::Auto => *self.inner.f16_native[slot].get_or_init(|| {
                self.native_f16_rounds_to_nearest_even().unwrap_or(false)
                    && crate::ops::activation::native_f16_is_faster(self, intensity)
            }),
        }
    }

    /// True when the device's native f32 -> f16 conversion (`SHADER_F16`) rounded every value of a probe to
    /// nearest even, as the packed path does: every f16 value's neighbourhood in both signs, ties included; and
    /// its f16 -> f32 widening gave every one of the 65,536 f16 bit patterns exactly, subnormals kept
    /// (`src/ops/f16_rounding.rs`). WGSL lets the conversion round to either neighbour, so
    /// [`F16Storage::Auto`] uses the native path only where this holds. False without `SHADER_F16`. Probed once,
    /// on first use.
    pub fn native_f16_rounds_to_nearest_even(&self) -> Result<bool> {
        if let Some(&r) = self.inner.native_f16_rounding.get() {
            return Ok(r);
        }
        let r = crate::ops::f16_rounding::probe(self)?;
        Ok(*self.inner.native_f16_rounding.get_or_init(|| r))
    }

    /// True when the device flushes f32 subnormals to zero, as WGSL allows (NVIDIA's Vulkan driver does; the
    /// software adapters do not): probed once with a one-thread kernel that multiplies and compares `2^-140`.
    /// The checks of [`crate::verify`] accept what flushing does to results only on such a device (see
    /// [`crate::verify::FLUSH_UNDERFLOW`]).
    pub fn flushes_subnormals(&self) -> Result<bool> {
        if let Some(&f) = self.inner.flushes_subnormals.get() {
            return Ok(f);
        }
        let f = crate::verify::probe_flushing(self)?;
        Ok(*self.inner.flushes_subnormals.get_or_init(|| f))
    }

    /// Rows per row block of the column reductions (the per-block partial column sums of the bias backward and
    /// of the learnable activations' parameter gradients): [`GpuOptions::reduction_rows`] where it was given (0
    /// counting as 1), otherwise the adapter type's default (8 on CPU adapters, 32 elsewhere). At least 1. The
    /// bias forward's rows per thread have their own default (2 on GPUs) unless the option is given.
    pub fn reduction_rows(&self) -> usize {
        self.inner.reduction_rows
    }

    /// Rows per thread of bias + activation forward on the row grid: [`GpuOptions::reduction_rows`] where it was
    /// given, otherwise 8 on CPU adapters and 2 elsewhere (see `forward_rows_per_block` in `src/ops/bias.rs`).
    pub(crate) fn bias_forward_rows(&self) -> usize {
        self.inner.bias_forward_rows
    }

    /// Whether the driver stops a shader invocation's loops after a fixed number of iterations, silently: Mesa's
    /// llvmpipe (lavapipe on Vulkan, llvmpipe on GL) ends every loop of an invocation once they have run 65,535
    /// iterations in all (`LP_MAX_TGSI_LOOP_ITERATIONS`), and the invocation goes on with what it has. Taken as
    /// true for every CPU adapter. Where it holds, the kernels bound what one invocation walks: a product deeper
    /// than [`crate::ops::matmul::LOOP_LIMITED_K`] runs split on the tiled kernel, and cross-entropy over
    /// 16,384 classes or more takes a workgroup per row (by default: [`GpuOptions::cross_entropy_wide_rows`]),
    /// and what still cannot fit a walk (more classes or rows than the kernels' loops can take there) is
    /// [`Error::LimitExceeded`], never a short result.
    pub fn loop_limited(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Classes from which softmax cross-entropy takes a workgroup per row ([`GpuOptions::cross_entropy_wide_rows`]
    /// where it was given, else 256 on GPUs and 16,384 on CPU adapters).
    pub fn cross_entropy_wide_rows(&self) -> usize {
        self.inner.cross_entropy_wide_rows
    }

    /// [`GpuOptions::matmul_kernel`] as given.
    pub(crate) fn matmul_kernel_option(&self) -> Option<crate::MatmulKernel> {
        self.inner.matmul_kernel
    }

    /// The pipeline cache.
    pub fn pipelines(&self) -> &PipelineCache {
        &self.inner.cache
    }

    /// A storage buffer of at least `size` bytes for intermediate results that one recorded operation writes and
    /// reads back before it ends (the per-block partial sums of the column reductions). Every operation gets the
    /// same buffer, grown to the largest size asked: the work runs in submission order on the one queue and wgpu
    /// places a barrier between dispatches that write a buffer, so an operation never reads another's partials.
    /// Reusing it saves a fresh allocation, and wgpu's zero-fill of it, on every call. The kernels bind it whole,
    /// so it never grows past the storage-binding limit: a larger `size` is [`Error::LimitExceeded`].
    pub(crate) fn scratch(&self, size: u64) -> Result<wgpu::Buffer> {
        let limit = self.limits().max_storage_buffer_binding_size / 4 * 4;
        if size > limit {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                max: limit,
                requested: size,
            });
        }
        let lock = || self.inner.scratch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = lock().as_ref().filter(|b| b.size() >= size) {
            return Ok(b.clone());
        }
        // Created without holding the lock (the error scopes block on the device); a thread that grew it
        // meanwhile to at least this size wins.
        let b = self.scoped("scratch", || {
            self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("actgpu.scratch"),
                size: size.max(4).next_multiple_of(256).min(limit.max(4)),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?;
        let mut slot = lock();
        match slot.as_ref() {
            Some(other) if other.size() >= b.size() => Ok(other.clone()),
            _ => {
                *slot = Some(b.clone());
                Ok(b)
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

    /// `(read, write)`: two 16-byte storage buffers to bind where an entry point declares a binding that the
    /// recorded work never touches (a matmul without bias, say), one for read-only bindings and one for
    /// read-write ones, since wgpu rejects one buffer in both within a dispatch. Created once per context rather
    /// than on every call; nothing reads or writes them.
    pub(crate) fn unused_bindings(&self) -> &(wgpu::Buffer, wgpu::Buffer) {
        self.inner.unused.get_or_init(|| {
            let buffer = |label| {
                self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            };
            (buffer("actgpu.unused.read"), buffer("actgpu.unused.write"))
        })
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

    /// The host processor that runs a CPU adapter's kernels (lavapipe, llvmpipe), as
    /// [`crate::bench::host::host_cpu`] describes it (`AMD EPYC (x86_64, 2 threads; avx2 fma, no avx512f)`);
    /// `None` for other adapters. A software adapter's speed depends on it as much as on the adapter: the same
    /// `llvmpipe` adapter moved memory 6-8x slower on an AMD EPYC than on an Intel Xeon (BENCHMARKS.md).
    pub fn host_cpu(&self) -> Option<String> {
        (self.inner.info.device_type == wgpu::DeviceType::Cpu).then(crate::bench::host::host_cpu)
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

    /// A buffer of `usage` and `size` bytes (a multiple of 4, at least `contents.len()`) holding `contents` and
    /// then zeros, created mapped and written through the mapping, whose failure (out of memory, a lost or
    /// destroyed device) is an error for `op` ([`Gpu::lost_or`]) where wgpu's `create_buffer_init` panics. The
    /// caller's data goes straight into the mapping, with no padded copy of it on the host. Called inside error
    /// scopes ([`Gpu::scoped`]), which catch a refused creation.
    pub(crate) fn buffer_with(
        &self,
        op: &'static str,
        label: &'static str,
        usage: wgpu::BufferUsages,
        contents: &[u8],
        size: u64,
    ) -> Result<wgpu::Buffer> {
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: true,
        });
        {
            let mut mapped = buffer.slice(..).get_mapped_range_mut().map_err(|e| {
                self.lost_or(Error::Wgpu {
                    op,
                    message: e.to_string(),
                })
            })?;
            let (mut data, mut tail) = mapped.slice(..).split_at(contents.len());
            data.copy_from_slice(contents);
            tail.fill(0);
        }
        buffer.unmap();
        Ok(buffer)
    }

    /// `err`, or [`Error::DeviceLost`] where the device turns out to be lost (or destroyed): wgpu reports the
    /// resources of a lost device as invalid (a validation error, a failed mapping) before its lost callback has
    /// run, which happens at the next poll, made here without blocking.
    pub(crate) fn lost_or(&self, err: Error) -> Error {
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
        match self.check_lost() {
            Err(lost) => lost,
            Ok(()) => err,
        }
    }

    /// The errors no scope caught since the last report, as one [`Error::Wgpu`] for `op` (on a device
    /// [`Gpu::new`] made; a host's device keeps them for its own handler, and this finds none).
    pub(crate) fn take_uncaptured(&self, op: &'static str) -> Result<()> {
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
        self.submit_scoped_and_poll(op, record)?;
        self.take_uncaptured("an earlier submission")
    }

    /// [`Gpu::submit_and_wait`] without reporting errors that reached the device's handler from elsewhere: for
    /// the crate's own probes, which must neither fail on nor swallow a caller's earlier error (that stays for
    /// the caller's next [`Gpu::wait`] or read).
    pub(crate) fn submit_scoped_and_poll(
        &self,
        op: &'static str,
        record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<()> {
        self.check_lost()?;
        let device = &self.inner.device;
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
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
        let internal = pollster::block_on(internal.pop());
        recorded?;
        if let Some(err) = oom.or(validation).or(internal) {
            return Err(Error::Wgpu {
                op,
                message: err.to_string(),
            });
        }
        self.poll_until_idle()
    }

    /// Submits `encoder` (work recorded by the `record_*` calls, or anything else) without waiting, inside error
    /// scopes: a validation or out-of-memory error in what it recorded (wgpu reports those when the encoder
    /// finishes) comes back as [`Error::Wgpu`] for `op`, not through the device's error handler. The way to submit
    /// an encoder of one's own and still get typed errors; `gpu.queue().submit(..)` works too, but its errors then
    /// go to the device's handler (on a device [`Gpu::new`] made: reported by the next [`Gpu::wait`], read or
    /// [`Gpu::submit_and_wait`], as op `"an earlier submission"`). The encoder must be this context's device's:
    /// wgpu reports an encoder of another device to that device's handler, which no scope here sees (wgpu's
    /// default handler panics).
    pub fn submit(&self, op: &'static str, encoder: wgpu::CommandEncoder) -> Result<()> {
        self.check_lost()?;
        self.scoped(op, || {
            self.inner.queue.submit([encoder.finish()]);
        })
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes (the last is how a backend compiler's
    /// failure arrives): what wgpu reports there becomes [`Error::Wgpu`] for `op` instead of reaching the
    /// device's handler (or a later operation's report).
    pub(crate) fn scoped<T>(&self, op: &'static str, f: impl FnOnce() -> T) -> Result<T> {
        let device = &self.inner.device;
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        let internal = pollster::block_on(internal.pop());
        match validation.or(oom).or(internal) {
            Some(err) => Err(Error::Wgpu {
                op,
                message: err.to_string(),
            }),
            None => Ok(out),
        }
    }

    /// Blocks until all submitted work has finished. On a device [`Gpu::new`] made, also reports the wgpu errors
    /// that no scope caught since the last report (work submitted with `gpu.queue().submit(..)` directly) as
    /// [`Error::Wgpu`] with op `"an earlier submission"`; a host app's device keeps them for its own handler. The
    /// errors are the device's, not the thread's: with several threads on one context, the first to wait reports
    /// them, whichever thread's work they came from. [`crate::Tensor::read`] and [`Gpu::submit_and_wait`] report
    /// them the same way; the crate's own probes leave them for the caller.
    pub fn wait(&self) -> Result<()> {
        self.poll_until_idle()?;
        self.take_uncaptured("an earlier submission")
    }

    /// Polls until the device is idle, then checks that it was not lost; unlike [`Gpu::wait`], leaves the errors
    /// no scope caught for the caller's next wait (the crate's timers and probes use it).
    pub(crate) fn poll_until_idle(&self) -> Result<()> {
        if let Err(e) = self.inner.device.poll(wgpu::PollType::wait_indefinitely()) {
            // A lost device is DeviceLost, whichever way the poll noticed it first.
            self.check_lost()?;
            return Err(Error::Wgpu {
                op: "poll",
                message: e.to_string(),
            });
        }
        self.check_lost()
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_line())
            .field("launch", &self.inner.launch)
            .field("reduction_rows", &self.inner.reduction_rows)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::adapter_candidates;

    /// The adapters of this machine's `WGPU_BACKEND` (as the tests run), the preferred one first.
    fn adapters() -> (Option<wgpu::Adapter>, Vec<wgpu::Adapter>) {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        pollster::block_on(async {
            let preferred = instance
                .request_adapter(&wgpu::RequestAdapterOptions::default())
                .await
                .ok();
            (preferred, instance.enumerate_adapters(backends).await)
        })
    }

    /// Metal reports its whole buffer length as the binding limit; the kernels plan with at most 2^31 - 256
    /// bytes, a smaller limit is kept, and a limit that is not a multiple of 256 is rounded down (a padded buffer
    /// sized to fit an odd limit would not).
    #[test]
    fn planned_limits_cap_the_binding_size() {
        use super::{planned_limits, MAX_BINDING_BYTES};
        assert_eq!(MAX_BINDING_BYTES % 256, 0);
        for device in [u64::from(u32::MAX), (1 << 31) - 1, 1 << 31] {
            let limits = wgpu::Limits {
                max_storage_buffer_binding_size: device,
                ..wgpu::Limits::default()
            };
            let planned = planned_limits(limits).max_storage_buffer_binding_size;
            assert_eq!(planned, MAX_BINDING_BYTES, "device limit {device}");
        }
        // An odd limit rounds down to the offset alignment (256 in the defaults), or to 32 where that is less:
        // a limit under 256 stays usable on a device with a small alignment.
        for (align, limit, planned) in [
            (256, (1 << 20) - 1, (1 << 20) - 256),
            (16, 255, 224),
            (64, 255, 192),
        ] {
            let limits = wgpu::Limits {
                max_storage_buffer_binding_size: limit,
                min_storage_buffer_offset_alignment: align,
                ..wgpu::Limits::default()
            };
            let got = planned_limits(limits).max_storage_buffer_binding_size;
            assert_eq!(got, planned, "alignment {align}, limit {limit}");
        }
        let metal_like = wgpu::Limits {
            max_storage_buffer_binding_size: 1 << 36,
            ..wgpu::Limits::default()
        };
        let planned = planned_limits(metal_like.clone());
        assert_eq!(planned.max_storage_buffer_binding_size, MAX_BINDING_BYTES);
        assert_eq!(planned.max_buffer_size, metal_like.max_buffer_size);
        let small = wgpu::Limits::default();
        assert_eq!(planned_limits(small.clone()), small);
    }

    #[test]
    fn the_preferred_adapter_comes_first_once_and_a_name_filter_narrows() {
        let (preferred, others) = adapters();
        let preferred = preferred.expect("the tests need an adapter (see NO_ADAPTER_HINT)");
        let name = preferred.get_info().name;
        let all = adapter_candidates(Some(preferred.clone()), others.clone(), None);
        assert_eq!(all[0].get_info().name, name);
        assert_eq!(
            all.len(),
            others.len().max(1),
            "the preferred adapter is listed once"
        );
        // A part of the name, in another case, keeps it; a name no adapter has leaves nothing to try.
        let part = name[..name.len().min(4)].to_uppercase();
        let named = adapter_candidates(Some(preferred.clone()), others.clone(), Some(&part));
        assert_eq!(named[0].get_info().name, name);
        assert!(
            adapter_candidates(Some(preferred), others, Some("no such adapter, surely")).is_empty()
        );
    }
}
