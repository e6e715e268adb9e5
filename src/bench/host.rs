//! The host CPU, named in a benchmark report of a CPU adapter: llvmpipe's adapter name says the vector width and
//! LLVM version but not the processor, and the same adapter name measured a 7-8x lower copy ceiling on an AVX2-only
//! AMD EPYC than on an Intel Xeon with AVX-512 (BENCHMARKS.md, "A second kind of host").

/// `"<model> (<arch>, <n> threads; <vector features>)"`: the model from `/proc/cpuinfo` where there is one
/// (`"unknown model"` elsewhere), the threads this process may use, and on x86_64 whether AVX2, FMA and AVX-512F
/// are present (LLVM compiles llvmpipe's shaders for them; the two hosts measured so far differ in AVX-512F).
pub fn host_cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| cpuinfo_model(&s))
        .unwrap_or_else(|| "unknown model".into());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let features = vector_features();
    let features = if features.is_empty() {
        String::new()
    } else {
        format!("; {features}")
    };
    format!(
        "{model} ({}, {threads} threads{features})",
        std::env::consts::ARCH
    )
}

/// The first `model name` (x86) or `Hardware` / `CPU part` line's value (Arm) of a `/proc/cpuinfo` text, the
/// part number prefixed so that it reads as an identifier (`CPU part 0xd0c`).
fn cpuinfo_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "CPU part"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                let v = v.trim();
                (k.trim() == *key && !v.is_empty()).then(|| match *key {
                    "CPU part" => format!("CPU part {v}"),
                    _ => v.to_string(),
                })
            })
        })
}

/// `avx2 fma, no avx512f`, say: the x86_64 vector features present and absent; empty on other architectures.
fn vector_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let all = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ];
        let has: Vec<&str> = all.iter().filter(|f| f.1).map(|f| f.0).collect();
        let lacks: Vec<&str> = all.iter().filter(|f| !f.1).map(|f| f.0).collect();
        match (has.is_empty(), lacks.is_empty()) {
            (_, true) => has.join(" "),
            (true, false) => format!("no {}", lacks.join(", no ")),
            (false, false) => format!("{}, no {}", has.join(" "), lacks.join(", no ")),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_read_from_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n";
        assert_eq!(cpuinfo_model(x86).as_deref(), Some("AMD EPYC"));
        let arm = "processor\t: 0\nCPU part\t: 0xd0c\n";
        assert_eq!(cpuinfo_model(arm).as_deref(), Some("CPU part 0xd0c"));
        assert_eq!(cpuinfo_model("processor\t: 0\nmodel name\t:\n"), None);
    }

    #[test]
    fn the_line_names_the_architecture_and_threads() {
        let line = host_cpu();
        assert!(line.contains(std::env::consts::ARCH), "{line}");
        assert!(line.contains(" threads"), "{line}");
        #[cfg(target_arch = "x86_64")]
        assert!(line.contains("avx512f"), "{line}");
    }
}
