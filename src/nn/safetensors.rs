//! The safetensors file format (<https://github.com/huggingface/safetensors>), read and written without
//! dependencies:
//!
//! ```text
//! bytes 0..8         N, the header's length, u64 little-endian
//! bytes 8..8+N       the header: UTF-8 JSON, padded with spaces (0x20) to a multiple of 8 bytes
//!                    {"__metadata__": {"key": "value", ...},
//!                     "name": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//! bytes 8+N..        the data: each tensor row-major, little-endian, at [begin, end) of this region
//! ```
//!
//! [`serialize_f32`] writes F32 tensors the way the reference implementation does: `__metadata__` first, then
//! the tensors sorted by name, each stored at the next offset, with compact JSON. [`SafeTensors::parse`] checks
//! what the reference implementation checks, and returns [`Error::InvalidSafetensors`] where it fails: the
//! header length fits the file, the header is a JSON object (whitespace around it allowed) whose metadata (an
//! object, or null for none) holds strings, every tensor has one dtype the format defines, one shape and two
//! offsets, the dtype's byte count matches the shape (a sub-byte dtype's bits fill whole bytes), and the
//! tensors cover the data region exactly, without gaps or overlaps. It is stricter in two ways: a tensor name
//! or metadata key given twice is an error (the reference keeps the last), and the JSON reader refuses
//! nesting deeper than 64 containers and more than 4 million values. [`TensorView::to_f32`] converts F32, F16,
//! BF16 and F64 (rounded to nearest; beyond f32's range an error) to f32; other dtypes are
//! [`Error::TensorDTypeMismatch`].

use std::collections::HashSet;
use std::path::Path;

use super::json::{self, Json};
use crate::{Error, Result};

/// Largest header accepted, as in the reference implementation (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The dtypes [`TensorView::to_f32`] converts, as an error message lists them.
const CONVERTIBLE: &str = "F32, F16, BF16 or F64";

/// Bytes per element of the safetensors dtypes with a whole-byte element, `None` for others (the sub-byte
/// floats, and names the format does not define).
pub fn dtype_bytes(dtype: &str) -> Option<usize> {
    dtype_bits(dtype).filter(|b| b % 8 == 0).map(|b| b / 8)
}

/// Bits per element of every dtype the safetensors format defines, the sub-byte floats `F4` (4 bits) and
/// `F6_E2M3` / `F6_E3M2` (6 bits) included; `None` for a name it does not define, which [`SafeTensors::parse`]
/// rejects as the reference implementation does.
pub fn dtype_bits(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// One tensor of a parsed file: its name, dtype, shape and raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorView<'a> {
    /// The tensor's name.
    pub name: String,
    /// The dtype as the file spells it (`F32`, `BF16`, ...).
    pub dtype: String,
    /// The shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The data, `[begin, end)` of the data region.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// The elements as f32: F32 exactly, F16 and BF16 widened exactly, F64 rounded to nearest
    /// ([`Error::InvalidSafetensors`] for a finite F64 beyond f32's range, which would round to inf).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let d = self.data;
        Ok(match self.dtype.as_str() {
            "F32" => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "F16" => d
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            "BF16" => d
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            "F64" => d
                .chunks_exact(8)
                .enumerate()
                .map(|(i, b)| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(b);
                    let v = f64::from_le_bytes(w);
                    let f = v as f32;
                    // A finite value that rounds to inf would load as a weight of inf: refused.
                    if f.is_infinite() && v.is_finite() {
                        return Err(bad(format!(
                            "tensor {:?}: element {i} = {v:e} is beyond f32's range",
                            self.name
                        )));
                    }
                    Ok(f)
                })
                .collect::<Result<_>>()?,
            _ => return Err(self.not_convertible()),
        })
    }

    /// [`Error::TensorDTypeMismatch`] unless [`TensorView::to_f32`] converts this tensor's dtype: the check
    /// alone, before any conversion or allocation.
    pub fn check_convertible(&self) -> Result<()> {
        match self.dtype.as_str() {
            "F32" | "F16" | "BF16" | "F64" => Ok(()),
            _ => Err(self.not_convertible()),
        }
    }

    fn not_convertible(&self) -> Error {
        Error::TensorDTypeMismatch {
            name: self.name.clone(),
            expected: CONVERTIBLE.into(),
            got: self.dtype.clone(),
        }
    }
}

/// A parsed safetensors file, borrowing its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SafeTensors<'a> {
    /// `__metadata__`, in file order (empty when absent).
    pub metadata: Vec<(String, String)>,
    /// The tensors in header order.
    pub tensors: Vec<TensorView<'a>>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidSafetensors {
        reason: reason.into(),
    }
}

/// The tensor description `{"dtype", "shape", "data_offsets"}` (other members ignored) as
/// `(dtype, shape, begin, end)`.
fn tensor_info(name: &str, info: &Json) -> Result<(String, Vec<usize>, usize, usize)> {
    let Json::Object(members) = info else {
        return Err(bad(format!(
            "tensor {name:?} is {}, not an object",
            info.kind()
        )));
    };
    let field = |key: &str| {
        let mut found = members.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(v), None) => Ok(v),
            // The reference implementation refuses a repeated field; a reader that kept the first or the last
            // would disagree with the other.
            (Some(_), Some(_)) => Err(bad(format!("tensor {name:?}: {key:?} appears twice"))),
            (None, _) => Err(bad(format!("tensor {name:?} has no {key:?}"))),
        }
    };
    let usizes = |key: &str| -> Result<Vec<usize>> {
        let Json::Array(items) = field(key)? else {
            return Err(bad(format!("tensor {name:?}: {key:?} is not an array")));
        };
        items
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|u| usize::try_from(u).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "tensor {name:?}: {key:?} holds {}, not a non-negative integer",
                            v.kind()
                        ))
                    })
            })
            .collect()
    };
    let Json::String(dtype) = field("dtype")? else {
        return Err(bad(format!("tensor {name:?}: \"dtype\" is not a string")));
    };
    let shape = usizes("shape")?;
    let offsets = usizes("data_offsets")?;
    let [begin, end] = offsets[..] else {
        return Err(bad(format!(
            "tensor {name:?}: \"data_offsets\" has {} entries, not 2",
            offsets.len()
        )));
    };
    if begin > end {
        return Err(bad(format!(
            "tensor {name:?}: data_offsets [{begin}, {end}] run backwards"
        )));
    }
    let bits = dtype_bits(dtype)
        .ok_or_else(|| bad(format!("tensor {name:?}: unknown dtype {dtype:?}")))?;
    let want_bits = shape
        .iter()
        .try_fold(bits, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("tensor {name:?}: shape {shape:?} overflows")))?;
    let need = if want_bits % 8 == 0 {
        format!("{} bytes", want_bits / 8)
    } else {
        format!("{want_bits} bits, not whole bytes")
    };
    if want_bits % 8 != 0 || want_bits / 8 != end - begin {
        return Err(bad(format!(
            "tensor {name:?}: {dtype} {shape:?} needs {need}, data_offsets [{begin}, {end}] hold {}",
            end - begin
        )));
    }
    Ok((dtype.clone(), shape, begin, end))
}

fn metadata_of(value: &Json) -> Result<Vec<(String, String)>> {
    // `"__metadata__": null` is no metadata, as in the reference implementation (an optional field).
    if *value == Json::Null {
        return Ok(Vec::new());
    }
    let Json::Object(members) = value else {
        return Err(bad("__metadata__ is not an object"));
    };
    let mut keys = HashSet::new();
    members
        .iter()
        .map(|(k, v)| match v {
            // The reference implementation keeps the last of repeated keys, which a reader that keeps the
            // first would disagree with: refused instead.
            _ if !keys.insert(k.as_str()) => Err(bad(format!("__metadata__ {k:?} appears twice"))),
            Json::String(s) => Ok((k.clone(), s.clone())),
            other => Err(bad(format!(
                "__metadata__ {k:?} is {}, not a string",
                other.kind()
            ))),
        })
        .collect()
}

impl<'a> SafeTensors<'a> {
    /// Parses and checks a whole file (see the module documentation for what is checked).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let Some(len_bytes) = bytes.first_chunk::<8>() else {
            return Err(bad(format!(
                "{} bytes: shorter than the 8-byte header length",
                bytes.len()
            )));
        };
        let n = u64::from_le_bytes(*len_bytes);
        let rest = (bytes.len() - 8) as u64;
        if n > MAX_HEADER_BYTES || n > rest {
            return Err(bad(format!(
                "header length {n} exceeds the {rest} bytes after it (or the {MAX_HEADER_BYTES}-byte limit)"
            )));
        }
        let (header, data) = bytes[8..].split_at(n as usize);
        let text =
            std::str::from_utf8(header).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
        let Json::Object(members) = json::parse(text).map_err(bad)? else {
            return Err(bad("header is not a JSON object"));
        };
        let mut metadata = None;
        let mut tensors: Vec<TensorView<'a>> = Vec::new();
        let mut names = HashSet::new();
        let mut spans = Vec::new();
        for (name, value) in &members {
            if name == "__metadata__" {
                if metadata.is_some() {
                    return Err(bad("__metadata__ appears twice"));
                }
                metadata = Some(metadata_of(value)?);
                continue;
            }
            if !names.insert(name.as_str()) {
                return Err(bad(format!("tensor {name:?} appears twice")));
            }
            let (dtype, shape, begin, end) = tensor_info(name, value)?;
            spans.push((begin, end, tensors.len()));
            tensors.push(TensorView {
                name: name.clone(),
                dtype,
                shape,
                data: &[],
            });
        }
        // The tensors must tile the data region: sorted by offset, each starts where the last ended.
        spans.sort_unstable();
        let mut at = 0;
        for &(begin, end, i) in &spans {
            if begin != at || end > data.len() {
                return Err(bad(format!(
                    "tensor {:?} at [{begin}, {end}]: expected to start at {at} and end within the {}-byte data",
                    tensors[i].name,
                    data.len()
                )));
            }
            tensors[i].data = &data[begin..end];
            at = end;
        }
        if at != data.len() {
            return Err(bad(format!(
                "the tensors cover {at} of the {} data bytes",
                data.len()
            )));
        }
        Ok(SafeTensors {
            metadata: metadata.unwrap_or_default(),
            tensors,
        })
    }

    /// The tensor named `name`, or [`Error::MissingTensor`].
    pub fn tensor(&self, name: &str) -> Result<&TensorView<'a>> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    /// The metadata value under `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An F32 tensor to write: name, shape, row-major data (`data.len()` = product of `shape`).
#[derive(Debug, Clone, Copy)]
pub struct F32Tensor<'a> {
    /// The tensor's name (not `__metadata__`).
    pub name: &'a str,
    /// Its shape.
    pub shape: &'a [usize],
    /// Its elements, row-major.
    pub data: &'a [f32],
}

/// A complete safetensors file of F32 tensors with `metadata` (see the module documentation for the layout).
/// Names must be unique and not `__metadata__`; metadata keys must be unique; each tensor's data must have the
/// product of its shape's elements.
pub fn serialize_f32(tensors: &[F32Tensor], metadata: &[(&str, &str)]) -> Result<Vec<u8>> {
    const OP: &str = "safetensors::serialize_f32";
    let mut sorted: Vec<&F32Tensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    for (i, t) in sorted.iter().enumerate() {
        let elements = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if elements != Some(t.data.len()) {
            return Err(Error::TensorShapeMismatch {
                name: t.name.into(),
                expected: t.shape.to_vec(),
                got: vec![t.data.len()],
            });
        }
        if t.name == "__metadata__" || (i > 0 && sorted[i - 1].name == t.name) {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!("tensor name {:?} is reserved or repeated", t.name),
            });
        }
    }
    let mut meta: Vec<&(&str, &str)> = metadata.iter().collect();
    meta.sort();
    if let Some(w) = meta.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("metadata key {:?} is repeated", w[0].0),
        });
    }
    let mut header = String::from("{");
    if !meta.is_empty() {
        header.push_str("\"__metadata__\":{");
        for (i, (k, v)) in meta.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            json::write_string(&mut header, k);
            header.push(':');
            json::write_string(&mut header, v);
        }
        header.push('}');
    }
    let mut offset = 0;
    for (i, t) in sorted.iter().enumerate() {
        if i > 0 || !meta.is_empty() {
            header.push(',');
        }
        json::write_string(&mut header, t.name);
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        let end = offset + 4 * t.data.len();
        header.push_str(&format!(
            ":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            shape.join(",")
        ));
        offset = end;
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in sorted {
        out.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
    }
    Ok(out)
}

/// Reads a whole file, mapping failures to [`Error::Io`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes a whole file, mapping failures to [`Error::Io`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}
