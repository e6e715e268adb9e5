//! Tensors: a storage buffer with a shape and an element type, upload and readback.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;

use crate::dtype::Element;
use crate::ops::recording::Recording;
use crate::{DType, Error, Gpu, Result};

/// Usage flags of every buffer actgpu allocates.
pub const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A tensor on the GPU: a storage buffer, a row-major shape and an element type.
///
/// Buffers are padded to whole 32-byte work units so kernels can read and write 16 bytes per access; the padding
/// is never read back.
#[derive(Debug, Clone)]
pub struct Tensor {
    gpu: Gpu,
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
    dtype: DType,
}

/// Bytes a buffer holding `len` elements of `dtype` needs: whole 32-byte blocks (a work unit of f32 data), at
/// least one; `u64::MAX` where that does not fit a `u64` (no device has such a buffer, so every size check
/// refuses it).
pub fn padded_bytes(len: usize, dtype: DType) -> u64 {
    (len as u64)
        .checked_mul(dtype.size_bytes() as u64)
        .and_then(|bytes| bytes.div_ceil(32).max(1).checked_mul(32))
        .unwrap_or(u64::MAX)
}

fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(Error::InvalidArgument {
            op: "tensor",
            reason: format!("shape {shape:?} overflows usize"),
        })
}

impl Gpu {
    fn check_buffer_size(&self, bytes: u64) -> Result<()> {
        let max = self.limits().max_buffer_size;
        if bytes > max {
            return Err(Error::LimitExceeded {
                limit: "max_buffer_size",
                max,
                requested: bytes,
            });
        }
        Ok(())
    }

    /// A 1-D tensor holding a copy of `data`.
    pub fn upload<T: Element>(&self, data: &[T]) -> Result<Tensor> {
        self.upload_shaped(data, &[data.len()])
    }

    /// A tensor of the given shape holding a copy of `data` (row-major).
    pub fn upload_shaped<T: Element>(&self, data: &[T], shape: &[usize]) -> Result<Tensor> {
        let len = element_count(shape)?;
        if len != data.len() {
            return Err(Error::ShapeMismatch {
                op: "upload",
                expected: shape.to_vec(),
                got: vec![data.len()],
            });
        }
        let bytes = padded_bytes(len, T::DTYPE);
        self.check_buffer_size(bytes)?;
        self.check_lost()?;
        // Created mapped inside error scopes, so that a buffer wgpu could not make (out of memory, a lost
        // device) is an error here rather than a panic when its mapping is written. The data goes straight into
        // the mapping: a padded host copy first would hold a third copy of a large tensor in host memory.
        let contents = bytemuck::cast_slice::<T, u8>(data);
        let buffer = self
            .scoped("upload", || {
                self.buffer_with("upload", "actgpu.tensor", TENSOR_USAGE, contents, bytes)
            })
            .map_err(|e| self.lost_or(e))??;
        Ok(Tensor {
            gpu: self.clone(),
            buffer,
            shape: shape.to_vec(),
            dtype: T::DTYPE,
        })
    }

    /// A 1-D tensor of type `dtype` holding `data` rounded to it (to nearest even, as the kernels round; a NaN's
    /// payload goes through `half`'s conversion, which keeps its top bits where the kernels' f16 stores write the
    /// canonical quiet NaN).
    pub fn upload_f32_as(&self, data: &[f32], dtype: DType) -> Result<Tensor> {
        match dtype {
            DType::F32 => self.upload(data),
            DType::F16 => self.upload(
                &data
                    .iter()
                    .map(|&v| half::f16::from_f32(v))
                    .collect::<Vec<_>>(),
            ),
            DType::BF16 => self.upload(
                &data
                    .iter()
                    .map(|&v| half::bf16::from_f32(v))
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// A zero-filled tensor of the given shape and type.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let len = element_count(shape)?;
        let bytes = padded_bytes(len, dtype);
        self.check_buffer_size(bytes)?;
        self.check_lost()?;
        let buffer = self
            .scoped("zeros", || {
                self.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("actgpu.tensor"),
                    size: bytes,
                    usage: TENSOR_USAGE,
                    mapped_at_creation: false,
                })
            })
            .map_err(|e| self.lost_or(e))?;
        Ok(Tensor {
            gpu: self.clone(),
            buffer,
            shape: shape.to_vec(),
            dtype,
        })
    }
}

impl Tensor {
    /// Wraps a buffer the host application owns. It needs `STORAGE` (and `COPY_SRC` to be read back), at least
    /// [`padded_bytes`] bytes, and a size that is a multiple of 4 (the kernels bind whole buffers, and wgpu refuses
    /// a storage binding of any other size). The tensor starts at the buffer's first byte, and kernels that
    /// write it may write the whole padded size (they store 8-element units): keep nothing of your own in the
    /// bytes between the data's end and [`padded_bytes`].
    ///
    /// The buffer must have been created on `gpu.device()`. One of another device of the same `wgpu::Instance`
    /// fails at its first use with [`Error::Wgpu`]; one of another instance cannot be detected (wgpu names
    /// resources by an index into their instance's tables), and reads and writes would reach whichever buffer
    /// has that index here (see [`Gpu::from_device`]).
    pub fn from_buffer(
        gpu: &Gpu,
        buffer: wgpu::Buffer,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        let len = element_count(shape)?;
        let missing = wgpu::BufferUsages::STORAGE - buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                op: "Tensor::from_buffer",
                missing: format!("{missing:?}"),
            });
        }
        let need = padded_bytes(len, dtype);
        if buffer.size() < need {
            return Err(Error::InvalidArgument {
                op: "Tensor::from_buffer",
                reason: format!(
                    "buffer of {} bytes is smaller than the {need} bytes a padded {shape:?} {} tensor needs",
                    buffer.size(),
                    dtype.name()
                ),
            });
        }
        if !buffer.size().is_multiple_of(4) {
            return Err(Error::InvalidArgument {
                op: "Tensor::from_buffer",
                reason: format!(
                    "buffer of {} bytes: a storage binding's size must be a multiple of 4",
                    buffer.size()
                ),
            });
        }
        Ok(Tensor {
            gpu: gpu.clone(),
            buffer,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// The context this tensor lives in.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The shape, row-major.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same buffer under another shape with as many elements (no copy): `[32]` as `[4, 8]`, say.
    /// [`Error::ShapeMismatch`] where the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let len = element_count(shape)?;
        if len != self.len() {
            return Err(Error::ShapeMismatch {
                op: "Tensor::reshape",
                expected: self.shape.clone(),
                got: shape.to_vec(),
            });
        }
        Ok(Tensor {
            gpu: self.gpu.clone(),
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// Records the zeroing of this tensor's padded bytes (not the rest of a larger host buffer);
    /// [`Error::MissingUsage`] for a buffer without `COPY_DST`, which `clear_buffer` needs.
    pub(crate) fn record_zero(&self, encoder: &mut Recording, op: &'static str) -> Result<()> {
        self.record_zero_range(encoder, op, 0, padded_bytes(self.len(), self.dtype))
    }

    /// Records the zeroing of bytes `[start, end)` of this tensor's buffer (clamped to it, multiples of 4);
    /// [`Error::MissingUsage`] without `COPY_DST`.
    pub(crate) fn record_zero_range(
        &self,
        encoder: &mut Recording,
        op: &'static str,
        start: u64,
        end: u64,
    ) -> Result<()> {
        let missing = wgpu::BufferUsages::COPY_DST - self.buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                op,
                missing: format!("{missing:?}"),
            });
        }
        let end = end.min(self.buffer.size()) / 4 * 4;
        if end > start {
            encoder.clear(&self.buffer, start, end - start);
        }
        Ok(())
    }

    /// The first `rows` rows of this tensor (`rows <= shape[0]`) as a tensor over the same buffer, no copy: kernels
    /// that write it may write its padded size, which stays inside the buffer.
    pub(crate) fn rows_prefix(&self, rows: usize) -> Result<Tensor> {
        match self.shape.split_first() {
            Some((&all, rest)) if rows <= all => {
                let mut shape = vec![rows];
                shape.extend_from_slice(rest);
                Ok(Tensor {
                    gpu: self.gpu.clone(),
                    buffer: self.buffer.clone(),
                    shape,
                    dtype: self.dtype,
                })
            }
            _ => Err(Error::ShapeMismatch {
                op: "Tensor::rows_prefix",
                expected: self.shape.clone(),
                got: vec![rows],
            }),
        }
    }

    /// A new zero-filled tensor of the same shape and type on the same device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        self.gpu.zeros(&self.shape, self.dtype)
    }

    /// Overwrites the contents with `data` (same length and type). Queued as wgpu's `write_buffer` is: it takes
    /// effect before the next submission, so ahead of work recorded earlier into an encoder not yet submitted.
    pub fn write<T: Element>(&self, data: &[T]) -> Result<()> {
        self.check_host_type::<T>("Tensor::write")?;
        if data.len() != self.len() {
            return Err(Error::ShapeMismatch {
                op: "Tensor::write",
                expected: self.shape.clone(),
                got: vec![data.len()],
            });
        }
        self.gpu.check_lost()?;
        if data.is_empty() {
            return Ok(());
        }
        // A wrapped host buffer may lack it; wgpu would report that to the device's error handler, not here.
        let missing = wgpu::BufferUsages::COPY_DST - self.buffer.usage();
        if !missing.is_empty() {
            return Err(Error::MissingUsage {
                op: "Tensor::write",
                missing: format!("{missing:?}"),
            });
        }
        // wgpu writes whole 4-byte words: the data's whole words straight from the caller's slice (no host copy
        // of a large tensor), then an odd 16-bit element's word padded with zeros, as the buffer's padding is.
        let bytes = bytemuck::cast_slice::<T, u8>(data);
        let (words, rest) = bytes.split_at(bytes.len() / 4 * 4);
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        // Scoped: a buffer the host destroyed would otherwise report to the device's handler, not here.
        self.gpu.scoped("Tensor::write", || {
            let queue = self.gpu.queue();
            if !words.is_empty() {
                queue.write_buffer(&self.buffer, 0, words);
            }
            if !rest.is_empty() {
                queue.write_buffer(&self.buffer, words.len() as u64, &last);
            }
        })
    }

    fn check_host_type<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch {
                op,
                expected: self.dtype,
                got: T::DTYPE,
            });
        }
        Ok(())
    }

    /// Copies into a mappable staging buffer and starts mapping it; `None` for an empty tensor.
    fn start_readback(&self) -> Result<Option<PendingRead>> {
        self.gpu.check_lost()?;
        if !self.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(Error::MissingUsage {
                op: "Tensor::read",
                missing: "COPY_SRC".into(),
            });
        }
        let bytes = (self.len() * self.dtype.size_bytes()) as u64;
        if bytes == 0 {
            return Ok(None);
        }
        let copy_bytes = bytes.div_ceil(4) * 4;
        let device = self.gpu.device();
        // In error scopes: a copy wgpu refuses (a destroyed or foreign buffer) is an error, not a read of the
        // staging buffer's zeros; and so is a map of it refused on a device the host destroyed (outside them it
        // would reach the device's handler, which panics by default).
        let (staging, rx) = self.gpu.scoped("Tensor::read", || {
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("actgpu.readback"),
                size: copy_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("actgpu.readback"),
            });
            encoder.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, copy_bytes);
            self.gpu.queue().submit([encoder.finish()]);
            let (tx, rx) = oneshot::channel();
            staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            (staging, rx)
        })?;
        Ok(Some(PendingRead {
            staging,
            rx,
            bytes: bytes as usize,
        }))
    }

    /// Reads the tensor back, asynchronously. The future makes progress under any executor: while the copy is
    /// pending, a thread of its own waits on the device (for all work submitted so far, not only this copy) and
    /// wakes the task when the data is there; each pending read has one such thread. The copy is recorded and
    /// submitted when the future is first polled, not when `read_async` is called: work submitted (or written
    /// with [`Tensor::write`]) in between is in what it reads. Unlike [`Tensor::read`], it does not report errors
    /// that no scope caught.
    pub async fn read_async<T: Element>(&self) -> Result<Vec<T>> {
        self.check_host_type::<T>("Tensor::read_async")?;
        let Some(pending) = self.start_readback()? else {
            return Ok(Vec::new());
        };
        let mapped = MapFuture::new(self.gpu.device(), pending.rx).await;
        if mapped.is_err() {
            // A lost device says so, rather than as a failed map.
            self.gpu.check_lost()?;
        }
        finish_read(mapped, &pending.staging, pending.bytes)
    }

    /// Reads the tensor back as f32 whatever its type (16-bit values convert exactly). Blocks.
    pub fn read_f32(&self) -> Result<Vec<f32>> {
        Ok(match self.dtype {
            DType::F32 => self.read::<f32>()?,
            DType::F16 => self
                .read::<half::f16>()?
                .iter()
                .map(|h| h.to_f32())
                .collect(),
            DType::BF16 => self
                .read::<half::bf16>()?
                .iter()
                .map(|h| h.to_f32())
                .collect(),
        })
    }

    /// Reads the tensor back, blocking until the device has finished. Like [`Gpu::wait`], reports the errors no
    /// scope caught since the last report (on a device [`Gpu::new`] made): the data may come from work that
    /// failed.
    pub fn read<T: Element>(&self) -> Result<Vec<T>> {
        // read_polled waited for the device already: only the report is left.
        let data = self.read_polled()?;
        self.gpu.take_uncaptured("an earlier submission")?;
        Ok(data)
    }

    /// [`Tensor::read`] without reporting errors from elsewhere: for the crate's probes, which must neither fail
    /// on nor swallow a caller's error (it stays for the caller's next [`Gpu::wait`] or read).
    pub(crate) fn read_polled<T: Element>(&self) -> Result<Vec<T>> {
        self.check_host_type::<T>("Tensor::read")?;
        let Some(pending) = self.start_readback()? else {
            return Ok(Vec::new());
        };
        self.gpu.poll_until_idle()?;
        // Another thread's poll may have collected the callback and not yet run it: wait for it without blocking
        // the device.
        let mapped = pollster::block_on(MapFuture::new(self.gpu.device(), pending.rx));
        finish_read(mapped, &pending.staging, pending.bytes)
    }
}

struct PendingRead {
    staging: wgpu::Buffer,
    rx: oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
    bytes: usize,
}

fn finish_read<T: Element>(
    mapped: std::result::Result<(), String>,
    staging: &wgpu::Buffer,
    bytes: usize,
) -> Result<Vec<T>> {
    mapped.map_err(|reason| Error::Readback { reason })?;
    let out = {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Readback {
                reason: e.to_string(),
            })?;
        bytemuck::pod_collect_to_vec::<u8, T>(&view[..bytes])
    };
    staging.unmap();
    Ok(out)
}

/// Resolves when the map callback has fired. The first poll that finds it pending starts a thread that waits on
/// the device (a blocking poll, during which wgpu runs the callback, whose send wakes the task), so the future
/// sleeps instead of spinning, under any executor. Where that poll fails (a lost device, whose pending callbacks
/// wgpu may never run), the thread records the error and wakes the task, which then resolves with it instead of
/// waiting forever.
struct MapFuture {
    device: wgpu::Device,
    rx: oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    waiting: bool,
    /// The helper thread's poll error, if its poll failed.
    poll_error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl MapFuture {
    fn new(
        device: &wgpu::Device,
        rx: oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    ) -> Self {
        MapFuture {
            device: device.clone(),
            rx,
            waiting: false,
            poll_error: std::sync::Arc::default(),
        }
    }
}

impl Future for MapFuture {
    type Output = std::result::Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r.map_err(|e| e.to_string())),
            Poll::Ready(Err(_)) => Poll::Ready(Err(wgpu::BufferAsyncError.to_string())),
            Poll::Pending => {
                let failed = self
                    .poll_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(message) = failed {
                    return Poll::Ready(Err(format!("the device's poll failed: {message}")));
                }
                if !self.waiting {
                    self.waiting = true;
                    let device = self.device.clone();
                    let poll_error = self.poll_error.clone();
                    let waker = cx.waker().clone();
                    std::thread::spawn(move || {
                        if let Err(e) = device.poll(wgpu::PollType::wait_indefinitely()) {
                            *poll_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(e.to_string());
                            waker.wake();
                        }
                    });
                }
                Poll::Pending
            }
        }
    }
}
