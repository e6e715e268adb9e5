//! One-off kernels that ask the device a question (does it flush subnormals, how does it round to f16): a
//! pipeline from stand-alone WGSL and one dispatch of it over whole buffers, every step inside error scopes, so
//! that a device that cannot run the probe gives an error rather than an uncaptured one for a later operation.

use crate::{Gpu, Result};

/// A probe's compiled pipeline.
pub(crate) struct Probe {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
}

impl Probe {
    /// Compiles `entry` of the WGSL `source` (an automatic layout: the bindings it uses, in group 0).
    pub(crate) fn new(gpu: &Gpu, label: &'static str, source: &str, entry: &str) -> Result<Probe> {
        let device = gpu.device();
        let pipeline = gpu.scoped(label, || {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        Ok(Probe { label, pipeline })
    }

    /// One dispatch of `groups` workgroups with `buffers` bound whole at their binding numbers; waits for it.
    pub(crate) fn run(
        &self,
        gpu: &Gpu,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: u32,
    ) -> Result<()> {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind = gpu.scoped(self.label, || {
            gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(self.label),
                layout: &self.pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })?;
        gpu.submit_scoped_and_poll(self.label, |enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(self.label),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
            Ok(())
        })
    }
}
