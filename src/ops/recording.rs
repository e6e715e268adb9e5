//! All or nothing: an op plans every command it will record (pipelines compiled, bind groups made, grids and
//! limits checked) into a [`Recording`] before any reaches the caller's encoder, so that an op that returns an
//! error has recorded nothing, whatever step failed: a limit met only by a later chunk, a host buffer that is
//! destroyed (where a bind group binds it) or lacks a usage, a custom activation's WGSL that one of several
//! pipelines cannot compile. What no planning step sees stays wgpu's to report when the encoder finishes: a clear
//! of a buffer the host destroyed (a clear makes no bind group), or one destroyed after the call.
//!
//! Every public `record_*` function of [`crate::ops`] runs its body through [`Recording::atomic`]; the crate's
//! internal steps take the `&mut Recording` and add to it. The commands reach the encoder in the order they
//! were planned, so what runs is what one straight pass over the body would have recorded.

use crate::error::Result;

/// One planned command: a compute dispatch or a buffer clear.
enum Command {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        grid: (u32, u32, u32),
        label: String,
    },
    Clear {
        buffer: wgpu::Buffer,
        start: u64,
        bytes: u64,
    },
}

/// The commands an op has planned, recorded into an encoder only when the whole op has succeeded.
#[derive(Default)]
pub(crate) struct Recording {
    commands: Vec<Command>,
}

impl Recording {
    /// Runs `plan` on an empty recording and, where it returns `Ok`, records what it planned into `encoder`
    /// (which returns nothing to fail: wgpu validates the commands when the encoder finishes); where it returns
    /// `Err`, `encoder` is left as it was.
    pub(crate) fn atomic<T>(
        encoder: &mut wgpu::CommandEncoder,
        plan: impl FnOnce(&mut Recording) -> Result<T>,
    ) -> Result<T> {
        let mut recording = Recording::default();
        let value = plan(&mut recording)?;
        recording.record_into(encoder);
        Ok(value)
    }

    /// Plans one dispatch of `pipeline` with `bind_group` over `grid` workgroups.
    pub(crate) fn dispatch(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        grid: (u32, u32, u32),
        label: &str,
    ) {
        self.commands.push(Command::Dispatch {
            pipeline: pipeline.clone(),
            bind_group,
            grid,
            label: label.to_owned(),
        });
    }

    /// Plans the zeroing of `bytes` bytes of `buffer` from `start` (both multiples of 4).
    pub(crate) fn clear(&mut self, buffer: &wgpu::Buffer, start: u64, bytes: u64) {
        self.commands.push(Command::Clear {
            buffer: buffer.clone(),
            start,
            bytes,
        });
    }

    fn record_into(self, encoder: &mut wgpu::CommandEncoder) {
        for command in self.commands {
            match command {
                Command::Dispatch {
                    pipeline,
                    bind_group,
                    grid: (x, y, z),
                    label,
                } => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&label),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bind_group, &[]);
                    pass.dispatch_workgroups(x, y, z);
                }
                Command::Clear {
                    buffer,
                    start,
                    bytes,
                } => encoder.clear_buffer(&buffer, start, Some(bytes)),
            }
        }
    }
}
