//! Pipeline cache: compiled compute pipelines keyed by everything that changes the compiled code.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::shaders::ShaderId;
use crate::{Error, Result};

/// Names everything that changes a compiled pipeline: the shader, its entry point, the workgroup size and every
/// other override constant (by name, with the value's f64 bits so the key is `Eq + Hash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader module.
    pub shader: ShaderId,
    /// The entry point in it.
    pub entry: &'static str,
    /// Threads per workgroup (passed as the override `WG`).
    pub workgroup_size: u32,
    /// Every other override constant as `(name, f64::to_bits(value))`, in a fixed order.
    pub constants: Vec<(&'static str, u64)>,
    /// The user-defined activation compiled into the module, by id ([`crate::CustomActivation`]), if any.
    pub custom: Option<u64>,
}

impl PipelineKey {
    /// A key from plain `(name, value)` constants.
    pub fn new(
        shader: ShaderId,
        entry: &'static str,
        workgroup_size: u32,
        constants: &[(&'static str, f64)],
    ) -> Self {
        PipelineKey {
            shader,
            entry,
            workgroup_size,
            constants: constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
            custom: None,
        }
    }

    /// Work units one workgroup covers: the workgroup size times the `PER_THREAD` override (1 where the key has
    /// none). The host's grid arithmetic reads it from the key so that it cannot disagree with the kernel.
    pub fn units_per_workgroup(&self) -> u64 {
        let per_thread = self
            .constants
            .iter()
            .find(|(name, _)| *name == "PER_THREAD")
            .map_or(1, |&(_, bits)| f64::from_bits(bits) as u64);
        u64::from(self.workgroup_size) * per_thread.max(1)
    }

    /// The same key with `workgroup_size` threads per workgroup.
    pub fn with_workgroup_size(mut self, workgroup_size: u32) -> Self {
        self.workgroup_size = workgroup_size;
        self
    }

    /// The same key for a module that compiles in the user-defined activation `custom`.
    pub fn with_custom(mut self, custom: Option<u64>) -> Self {
        self.custom = custom;
        self
    }

    /// The value of the override `ACT` (the activation the module's library is specialised to), if set.
    fn act(&self) -> Option<u32> {
        self.constants
            .iter()
            .find(|(name, _)| *name == "ACT")
            .map(|&(_, bits)| f64::from_bits(bits) as u32)
    }

    /// The override constants the pipeline is created with: `WG` (the workgroup size), then the key's own.
    pub fn override_constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = vec![("WG", f64::from(self.workgroup_size))];
        constants.extend(self.constants.iter().map(|&(k, v)| (k, f64::from_bits(v))));
        constants
    }

    /// The complete WGSL of the pipeline's module, as [`PipelineCache::get_or_create`] compiles it (the
    /// user-defined activation included, the library specialised to `ACT`).
    pub fn source(&self) -> Result<String> {
        let code = checked_custom_code(self.custom)?;
        Ok(self
            .shader
            .source_for(code.as_ref().map(|c| c.wgsl.as_str()), self.act())
            .text)
    }
}

/// What a shader module is built from: the shader, the user-defined activation compiled in, and the value of
/// the override `ACT` that its activation library is specialised to ([`ShaderId::source_for`]), if the pipeline
/// sets one.
type ModuleKey = (ShaderId, Option<u64>, Option<u32>);

/// Get-or-create cache of shader modules and compute pipelines for one device.
#[derive(Default)]
pub struct PipelineCache {
    /// Shader modules by shader, user-defined activation and the `ACT` constant they are specialised to.
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// Keys some thread is compiling now: another thread asking for one waits for it (`compiled`) instead of
    /// compiling the same pipeline again.
    in_flight: Mutex<HashSet<PipelineKey>>,
    /// Signalled whenever a key leaves `in_flight`.
    compiled: Condvar,
    /// Wall time spent creating modules and pipelines so far, summed over threads.
    compile_time: Mutex<Duration>,
    /// Pipelines created so far, counting any created twice.
    compiles: Mutex<usize>,
    /// The device of the first [`PipelineCache::get_or_create`]: its pipelines are that device's, and another
    /// device asking is refused rather than handed them.
    device: std::sync::OnceLock<wgpu::Device>,
}

/// Takes a key out of [`PipelineCache::in_flight`] when its compilation ends, however it ends (a panic in the
/// driver included), and wakes the threads waiting for it.
struct InFlight<'a> {
    cache: &'a PipelineCache,
    key: PipelineKey,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.cache.in_flight).remove(&self.key);
        self.cache.compiled.notify_all();
    }
}

impl PipelineCache {
    /// Number of distinct pipelines compiled so far.
    pub fn len(&self) -> usize {
        lock(&self.pipelines).len()
    }

    /// True when nothing has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wall time spent so far in wgpu's creation of shader modules and pipelines, summed over the threads that
    /// created them (they compile outside the cache's locks, so threads compile different pipelines in parallel
    /// where the backend lets them, wgpu making GL calls one at a time; a thread asking for a pipeline another is
    /// compiling waits for it). It holds what drivers compile there; llvmpipe (lavapipe
    /// and GL) generates machine code only at a pipeline's first dispatch, from its shader cache on disk when it
    /// has the shader, and that part lands in the first submission instead. On lavapipe the part counted here runs in every process, cache or not (see
    /// BENCHMARKS.md, "Pipeline compilation").
    pub fn compile_time(&self) -> Duration {
        *lock(&self.compile_time)
    }

    /// The pipeline for `key`, compiling it (and its module) on first use. Compilation errors are captured with
    /// error scopes and returned as [`Error::Wgpu`]. A cache serves one device, the first one it is asked with:
    /// another device of the same wgpu instance is [`Error::DeviceMismatch`] (wgpu tells devices apart by an id
    /// unique within an instance, so devices of two instances can compare equal: keep one cache per device, as
    /// each [`crate::Gpu`] does).
    pub fn get_or_create(
        &self,
        device: &wgpu::Device,
        key: &PipelineKey,
    ) -> Result<wgpu::ComputePipeline> {
        if self.device.get_or_init(|| device.clone()) != device {
            return Err(Error::DeviceMismatch {
                op: "PipelineCache::get_or_create",
            });
        }
        if let Some(p) = lock(&self.pipelines).get(key) {
            return Ok(p.clone());
        }
        // wgpu checks an entry point's workgroup size against the device's limits before it applies the override
        // constants, so a size set through `WG` would pass that check and fail in the driver: checked here. (Every
        // entry point's size is `WG`; tests/portability.rs checks that against the compiled modules.)
        crate::dispatch::check_workgroup_threads(&device.limits(), key.workgroup_size)?;
        let _claim = match self.claim(key) {
            Ok(claim) => claim,
            Err(pipeline) => return Ok(pipeline),
        };
        // Compiled without holding a lock, so that other threads' lookups and compilations of other keys go on
        // meanwhile (wgpu's error scopes are per thread); a thread asking for this key waits in `claim`.
        let start = Instant::now();
        let compiled = self.compile(device, key);
        *lock(&self.compile_time) += start.elapsed();
        *lock(&self.compiles) += 1;
        let pipeline = compiled?;
        // A statement of its own, so that the map's lock is released before `_claim` drops (which takes the
        // `in_flight` lock: `claim` takes the two in the other order). A waiter woken then finds the pipeline.
        let pipeline = lock(&self.pipelines)
            .entry(key.clone())
            .or_insert(pipeline)
            .clone();
        Ok(pipeline)
    }

    /// The right to compile `key` (held until the returned guard drops), or the pipeline another thread
    /// compiled while this one waited for it. A compilation that failed leaves no pipeline: the next thread then
    /// tries (and reports the same error).
    fn claim(&self, key: &PipelineKey) -> std::result::Result<InFlight<'_>, wgpu::ComputePipeline> {
        let mut in_flight = lock(&self.in_flight);
        loop {
            // Under the `in_flight` lock: a compiling thread puts its pipeline in the map before it takes its
            // key out of `in_flight`, so a key absent from both is not being compiled.
            if let Some(p) = lock(&self.pipelines).get(key) {
                return Err(p.clone());
            }
            if in_flight.insert(key.clone()) {
                return Ok(InFlight {
                    cache: self,
                    key: key.clone(),
                });
            }
            in_flight = self
                .compiled
                .wait(in_flight)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Pipelines created so far, a pipeline created twice counted twice (the cache makes that rare: one thread
    /// compiles a key while the others wait for it).
    pub fn compiles(&self) -> usize {
        *lock(&self.compiles)
    }

    /// The keys of every pipeline compiled so far (in no particular order): with [`PipelineKey::source`] and
    /// [`PipelineKey::override_constants`], what each was built from, for tools that translate the crate's
    /// pipelines for other backends (`tests/portability.rs` has naga write every one as MSL and HLSL).
    pub fn keys(&self) -> Vec<PipelineKey> {
        lock(&self.pipelines).keys().cloned().collect()
    }

    /// Creates the pipeline for `key` (and its module, on first use).
    fn compile(&self, device: &wgpu::Device, key: &PipelineKey) -> Result<wgpu::ComputePipeline> {
        let module = self.module(device, (key.shader, key.custom, key.act()))?;
        let constants = key.override_constants();
        // A backend compiler's failure comes back as an internal error, not a validation one: catch both, so
        // that neither reaches the device's uncaptured-error handler (a host app's may panic) nor leaves an
        // invalid pipeline in the cache.
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.entry),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let validation = pollster::block_on(scope.pop());
        let oom = pollster::block_on(oom.pop());
        if let Some(err) = validation.or(oom).or(pollster::block_on(internal.pop())) {
            return Err(Error::Wgpu {
                op: "create_compute_pipeline",
                message: format!("{} / {}: {err}", key.shader.label(), key.entry),
            });
        }
        Ok(pipeline)
    }

    fn module(&self, device: &wgpu::Device, key: ModuleKey) -> Result<wgpu::ShaderModule> {
        let (shader, custom, act) = key;
        if let Some(m) = lock(&self.modules).get(&key) {
            return Ok(m.clone());
        }
        let code = checked_custom_code(custom)?;
        let source = shader.source_for(code.as_ref().map(|c| c.wgsl.as_str()), act);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.label()),
            source: wgpu::ShaderSource::Wgsl(source.text.into()),
        });
        let validation = pollster::block_on(scope.pop());
        let internal = pollster::block_on(internal.pop());
        if let Some(err) = validation.or(internal) {
            let message = err.to_string();
            return Err(match code {
                Some(code) => {
                    let at = user_line(
                        &message,
                        shader.label(),
                        source.custom_first_line,
                        code.wgsl.lines().count(),
                    )
                    .map(|line| code.locate(line));
                    Error::CustomShader {
                        name: code.name.clone(),
                        body: at.map(|(body, _)| body),
                        line: at.map(|(_, line)| line),
                        message,
                    }
                }
                None => Error::Wgpu {
                    op: "create_shader_module",
                    message: format!("{}: {message}", shader.label()),
                },
            });
        }
        Ok(lock(&self.modules).entry(key).or_insert(module).clone())
    }
}

/// The registered user-defined activation `custom` names, if any.
fn custom_code(custom: Option<u64>) -> Result<Option<std::sync::Arc<crate::custom::Registered>>> {
    custom
        .map(|id| {
            crate::custom::lookup(id).ok_or(Error::InvalidArgument {
                op: "create_shader_module",
                reason: format!("custom activation {id:#x} is not registered"),
            })
        })
        .transpose()
}

/// [`custom_code`], refusing a body whose braces or comments do not balance ([`Error::CustomShader`] at its line):
/// what every compilation, and the source it would compile, starts from.
fn checked_custom_code(
    custom: Option<u64>,
) -> Result<Option<std::sync::Arc<crate::custom::Registered>>> {
    let code = custom_code(custom)?;
    if let Some((body, line, why)) = code.as_ref().and_then(|c| c.braces.clone()) {
        return Err(Error::CustomShader {
            name: code.map(|c| c.name.clone()).unwrap_or_default(),
            body: Some(body),
            line: Some(line),
            message: why,
        });
    }
    Ok(code)
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (the maps stay valid).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The line of the user's code (`lines` lines from `first_line`) that a naga message points at, counted from 1
/// at the user code's first line; `None` when the message names no line inside it. naga places a parse error at
/// `wgsl:LINE:COL` and a validation error (a missing `return`, a wrong type) at `LABEL:LINE:COL`, `label` being
/// the module's; the first location in the message counts.
fn user_line(message: &str, label: &str, first_line: Option<usize>, lines: usize) -> Option<usize> {
    let first = first_line?;
    let line_after = |prefix: &str| {
        message.match_indices(prefix).find_map(|(at, _)| {
            let digits = message[at + prefix.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?;
            let line: usize = digits.parse().ok()?;
            Some((at, line))
        })
    };
    let (_, line) = [line_after("wgsl:"), line_after(&format!("{label}:"))]
        .into_iter()
        .flatten()
        .min()?;
    line.checked_sub(first)
        .filter(|&l| l < lines)
        .map(|l| l + 1)
}

#[cfg(test)]
mod tests {
    use super::{user_line, PipelineCache, PipelineKey};
    use crate::shaders::ShaderId;

    /// Four threads asking a fresh cache for the same new pipeline at once: one compiles it, the others wait and
    /// get it; then each asks for one of its own, compiled once each.
    #[test]
    fn threads_asking_for_one_new_pipeline_compile_it_once() {
        let gpu = crate::Gpu::new().unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        let cache = PipelineCache::default();
        let start = std::sync::Barrier::new(4);
        let key = |wg: u32| PipelineKey::new(ShaderId::Optim, "sgd", wg, &[]);
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let (cache, start, gpu) = (&cache, &start, &gpu);
                s.spawn(move || {
                    start.wait();
                    cache.get_or_create(gpu.device(), &key(64)).unwrap();
                    cache.get_or_create(gpu.device(), &key(32 + 8 * t)).unwrap();
                });
            }
        });
        assert_eq!((cache.len(), cache.compiles()), (5, 5));
    }

    /// Lines before, inside and after the user's 4 lines starting at module line 10.
    #[test]
    fn user_lines_are_counted_inside_the_users_code_only() {
        let at = |line: usize| format!("error\n   ┌─ wgsl:{line}:5\n");
        let m = "m.wgsl";
        assert_eq!(user_line(&at(9), m, Some(10), 4), None);
        assert_eq!(user_line(&at(10), m, Some(10), 4), Some(1));
        assert_eq!(user_line(&at(13), m, Some(10), 4), Some(4));
        assert_eq!(user_line(&at(14), m, Some(10), 4), None);
        assert_eq!(user_line("no location", m, Some(10), 4), None);
        assert_eq!(user_line(&at(12), m, None, 4), None);
        // A validation error names the module's label; the label's other mentions carry no line.
        let validation = "label = 'm.wgsl'\nShader 'm.wgsl' error\n   ┌─ m.wgsl:12:1\n13 │ │ x\n";
        assert_eq!(user_line(validation, m, Some(10), 4), Some(3));
        assert_eq!(user_line("┌─ m.wgsl:x:1", m, Some(10), 4), None);
    }
}
