//! Specialising the activation library to one activation before it is compiled.
//!
//! Every kernel that applies an activation calls `act_forward` or `act_derivative`, whose bodies are one
//! `switch ACT` over every activation (`shaders/activation_lib.wgsl`). `ACT` is a pipeline constant, so a driver
//! folds the switch in the end, but Mesa inlines every call first and optimises the copies before folding: the
//! generated matmul's epilogue calls `act_forward` 128 times, and lavapipe (Mesa 22.3) took 0.7-1.0 s to create
//! each such pipeline, which made compiling 95% of a short training run or of the activation study. The host
//! knows `ACT` when it builds the module, so it compiles a library whose switches hold only the case that `ACT`
//! selects (and `default`): the same program for that pipeline, a fraction of the code before folding.

/// `library` with every `switch ACT { ... }` reduced to the cases whose labels name `constant` (such as
/// `ACT_GELU`) or `default`, the only ones a pipeline with `ACT == constant` can take; everything else is copied
/// unchanged. Returns `None` if a switch is not in the form this reads (`case LABEL[, LABEL...]: { ... }` or
/// `default: { ... }` blocks, `//` comments between them), so that a caller can fall back to the whole library.
pub(crate) fn act_switches(library: &str, constant: &str) -> Option<String> {
    const HEAD: &str = "switch ACT {";
    let mut out = String::with_capacity(library.len());
    let mut rest = library;
    while let Some(at) = rest.find(HEAD) {
        let body_start = at + HEAD.len();
        out.push_str(&rest[..body_start]);
        let (kept, consumed) = keep_cases(&rest[body_start..], constant)?;
        out.push_str(&kept);
        rest = &rest[body_start + consumed..];
    }
    out.push_str(rest);
    Some(out)
}

/// Reads the cases of a switch body up to and including its closing brace: the kept cases (each on its own
/// line) with the closing brace, and the number of bytes read.
fn keep_cases(body: &str, constant: &str) -> Option<(String, usize)> {
    let mut kept = String::new();
    let mut i = 0;
    loop {
        i = skip_blank(body, i);
        let rest = &body[i..];
        if let Some(after) = rest.strip_prefix('}') {
            kept.push_str("\n    }");
            return Some((kept, body.len() - after.len()));
        }
        let colon = rest.find(':')?;
        let labels = &rest[..colon];
        let labels = labels
            .strip_prefix("case ")
            .or_else(|| (labels.trim() == "default").then_some("default"))?;
        let open = skip_blank(rest, colon + 1);
        if !rest[open..].starts_with('{') {
            return None;
        }
        let close = matching_brace(rest, open)?;
        if labels
            .split(',')
            .map(str::trim)
            .any(|l| l == constant || l == "default")
        {
            kept.push_str("\n        ");
            kept.push_str(&rest[..=close]);
        }
        i += close + 1;
    }
}

/// The index of the first byte at or after `i` that is neither whitespace nor inside a `//` comment.
fn skip_blank(s: &str, mut i: usize) -> usize {
    loop {
        let rest = &s[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            i += trimmed.find('\n').unwrap_or(trimmed.len());
        } else {
            return i;
        }
    }
}

/// The index of the brace that closes the one at `open`, skipping `//` comments.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i += s[i..].find('\n')?;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "fn f(x: f32) -> f32 {
    var y: f32;
    switch ACT {
        case ACT_A: { y = x; }
        // A comment with a brace }.
        case ACT_B, ACT_C: {
            if (x > 0.0) { y = 1.0; } // and another {
            y += 2.0;
        }
        default: { y = 0.0; }
    }
    return y;
}
fn g() -> u32 { switch ACT { case ACT_C: { return 3u; } default: { return 0u; } } }
";

    #[test]
    fn keeps_the_selected_case_and_default_in_every_switch() {
        let c = act_switches(LIB, "ACT_C").unwrap();
        assert!(c.contains("case ACT_B, ACT_C: {\n            if (x > 0.0) { y = 1.0; }"));
        assert!(c.contains("y += 2.0;\n        }"));
        assert!(c.contains("case ACT_C: { return 3u; }"));
        assert_eq!(c.matches("default:").count(), 2);
        assert!(!c.contains("ACT_A") && !c.contains("A comment"));
        assert!(c.ends_with("    }\n    return y;\n}\nfn g() -> u32 { switch ACT {\n        case ACT_C: { return 3u; }\n        default: { return 0u; }\n    } }\n"));

        let a = act_switches(LIB, "ACT_A").unwrap();
        assert!(
            a.contains("case ACT_A: { y = x; }") && !a.contains("ACT_B") && !a.contains("ACT_C")
        );
        assert_eq!(a.matches("default:").count(), 2);
    }

    #[test]
    fn an_unknown_constant_keeps_only_default() {
        let d = act_switches(LIB, "ACT_Z").unwrap();
        assert!(!d.contains("case "));
        assert_eq!(d.matches("default:").count(), 2);
    }

    #[test]
    fn text_without_switches_is_unchanged_and_malformed_switches_are_refused() {
        assert_eq!(act_switches("fn h() {}\n", "ACT_A").unwrap(), "fn h() {}\n");
        assert_eq!(
            act_switches("switch ACT { case ACT_A: y = 1; }", "ACT_A"),
            None
        );
        assert_eq!(
            act_switches("switch ACT { case ACT_A: { y = 1; ", "ACT_A"),
            None
        );
        assert_eq!(
            act_switches("switch ACT { when ACT_A: { } }", "ACT_A"),
            None
        );
    }
}
