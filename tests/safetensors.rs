//! Safetensors save and load: the bytes of a hand-built file (so the format is right, not just self-consistent),
//! a round trip that keeps every parameter and prediction bit for bit, 16-bit and f64 files, and typed errors,
//! never panics, for malformed, truncated and mismatched files.

mod common;

use actgpu::nn::checkpoint::{activation_spec, parse_activation_spec};
use actgpu::nn::safetensors::{serialize_f32, F32Tensor, SafeTensors};
use actgpu::verify::fused::random_values;
use actgpu::verify::Rng;
use actgpu::{Activation, Adam, DType, Error, Loss, Mlp, Optimizer, Sgd};
use common::gpu;

fn sgd() -> Optimizer {
    Optimizer::Sgd(Sgd::new(0.1))
}

/// A file from its header text (padded here to 8 bytes) and data.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A 2-3-1 ReLU network as PyTorch's `Sequential(Linear(2, 3), ReLU(), Linear(3, 1))` state dict, by hand:
/// weights `[out, in]`, tensors sorted by name, metadata first, compact JSON padded with spaces.
const W0_TORCH: [f32; 6] = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5]; // [3, 2]
const B0: [f32; 3] = [0.125, -0.5, 1.0];
const W2_TORCH: [f32; 3] = [1.0, -2.0, 0.5]; // [1, 3]
const B2: [f32; 1] = [-0.25];
const HEADER: &str = concat!(
    r#"{"__metadata__":{"actgpu.activations":"relu","actgpu.sizes":"2,3,1","format":"pt"},"#,
    r#""0.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"#,
    r#""0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[12,36]},"#,
    r#""2.bias":{"dtype":"F32","shape":[1],"data_offsets":[36,40]},"#,
    r#""2.weight":{"dtype":"F32","shape":[1,3],"data_offsets":[40,52]}}"#
);

fn hand_built() -> Vec<u8> {
    let data = [&B0[..], &W0_TORCH, &B2, &W2_TORCH].concat();
    let file = raw(HEADER, &le(&data));
    // The header is 330 bytes: six spaces of padding, and the length word says 336.
    assert_eq!(HEADER.len(), 330);
    assert_eq!(&file[..8], &336u64.to_le_bytes());
    file
}

#[test]
fn a_hand_built_pytorch_file_loads_and_is_written_back_byte_for_byte() {
    let g = gpu();
    let mut net = Mlp::new(g, &[2, 3, 1], &[Activation::Relu], Loss::Mse, sgd(), 5).unwrap();
    let file = hand_built();
    net.load_weights(&file).unwrap();
    let params = net.params().unwrap();
    // Our W is [in, out]: the transpose of PyTorch's weight.
    assert_eq!(params[0].0, [0.5, 2.0, -0.75, -1.0, 0.25, 1.5]);
    assert_eq!(params[0].1, B0);
    assert_eq!(params[1].0, W2_TORCH);
    assert_eq!(params[1].1, B2);
    // y = W2 relu(W0 x + b0) + b2, as PyTorch computes it, on exact values.
    let x = g.upload_shaped(&[1.0f32, 2.0, -1.0, 0.5], &[2, 2]).unwrap();
    let y: Vec<f32> = net.predict(&x).unwrap().read().unwrap();
    // Row 1: h = relu([0.5 - 2 + 0.125, 2 + 0.5 - 0.5, -0.75 + 3 + 1]) = [0, 2, 3.25]; y = -4 + 1.625 - 0.25.
    // Row 2: h = relu([-0.5 - 0.5 + 0.125, -2 + 0.125 - 0.5, 0.75 + 0.75 + 1]) = [0, 0, 2.5]; y = 1.25 - 0.25.
    assert_eq!(y, [-2.625, 1.0]);
    assert_eq!(net.to_safetensors_bytes().unwrap(), file);
}

#[test]
fn the_reader_takes_any_member_order_whitespace_and_extra_fields() {
    let header = r#" { "2.weight" : {"data_offsets": [40, 52], "shape": [1, 3], "dtype": "F32", "extra": [1, {"x": null}]},
        "0.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [12, 36]},
        "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
        "__metadata__": {"note": "caf\u00e9 \"quoted\""},
        "2.bias": {"dtype": "F32", "shape": [1], "data_offsets": [36, 40]} }"#;
    let data = le(&[&B0[..], &W0_TORCH, &B2, &W2_TORCH].concat());
    // A header starting with a space reads, as in the reference implementation (its check for a leading '{'
    // is disabled).
    assert!(SafeTensors::parse(&raw(header, &data)).is_ok());
    let file = raw(header.trim_start(), &data);
    let parsed = SafeTensors::parse(&file).unwrap();
    assert_eq!(parsed.metadata("note"), Some("caf\u{e9} \"quoted\""));
    assert_eq!(parsed.tensor("0.weight").unwrap().shape, [3, 2]);
    let mut net = Mlp::new(gpu(), &[2, 3, 1], &[Activation::Relu], Loss::Mse, sgd(), 5).unwrap();
    net.load_weights(&file).unwrap();
    assert_eq!(net.params().unwrap()[1].0, W2_TORCH);
}

/// A network with nonzero biases: a few Adam steps from a seed.
fn trained(sizes: &[usize], hidden: &[Activation], seed: u64) -> Mlp {
    let g = gpu();
    let opt = Optimizer::Adam(Adam::new(0.01));
    let mut net = Mlp::new(g, sizes, hidden, Loss::SoftmaxCrossEntropy, opt, seed).unwrap();
    let out = sizes[sizes.len() - 1] as u64;
    for s in 0..3 {
        let x = random_values(16 * sizes[0], 1.0, DType::F32, seed + s);
        let mut rng = Rng::new(seed + s);
        let t: Vec<u32> = (0..16).map(|_| (rng.next_u64() % out) as u32).collect();
        net.train_step_classes(&x, &t).unwrap();
    }
    net
}

const SIZES: [usize; 4] = [5, 7, 6, 3];
const HIDDEN: [Activation; 2] = [
    Activation::Gelu,
    Activation::Softplus {
        beta: 2.0,
        threshold: 15.0,
    },
];

#[test]
fn round_trip_keeps_every_parameter_and_prediction_bit_for_bit() {
    let g = gpu();
    let net = trained(&SIZES, &HIDDEN, 40);
    let bytes = net.to_safetensors_bytes().unwrap();
    let x = g
        .upload_shaped(
            &random_values(9 * SIZES[0], 2.0, DType::F32, 41),
            &[9, SIZES[0]],
        )
        .unwrap();
    let want: Vec<f32> = net.predict(&x).unwrap().read().unwrap();

    // Into a fresh network of the same sizes (another seed), through a file on disk.
    let path = std::env::temp_dir().join(format!("actgpu-{}.safetensors", std::process::id()));
    net.save_safetensors(&path).unwrap();
    let mut fresh = Mlp::new(g, &SIZES, &HIDDEN, Loss::SoftmaxCrossEntropy, sgd(), 99).unwrap();
    assert_ne!(
        bits(&fresh.params().unwrap()[0].0),
        bits(&net.params().unwrap()[0].0)
    );
    fresh.load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for ((w, b), (w2, b2)) in net.params().unwrap().iter().zip(fresh.params().unwrap()) {
        assert_eq!(bits(w), bits(&w2));
        assert_eq!(bits(b), bits(&b2));
    }
    let got: Vec<f32> = fresh.predict(&x).unwrap().read().unwrap();
    assert_eq!(bits(&got), bits(&want));

    // Rebuilt from the file alone: sizes from the shapes, activations from the metadata.
    let rebuilt = Mlp::from_safetensors(g, &bytes, Loss::SoftmaxCrossEntropy, sgd()).unwrap();
    assert_eq!(rebuilt.sizes(), SIZES);
    assert_eq!(rebuilt.activations(), HIDDEN);
    let got: Vec<f32> = rebuilt.predict(&x).unwrap().read().unwrap();
    assert_eq!(bits(&got), bits(&want));
    assert_eq!(rebuilt.to_safetensors_bytes().unwrap(), bytes);
}

#[test]
fn activation_specs_round_trip_with_their_parameters() {
    let others = actgpu::verify::OTHER_PARAMETERS;
    for act in Activation::ALL.into_iter().chain(others).chain([
        Activation::LeakyRelu {
            negative_slope: 0.3,
        },
        Activation::Hardtanh {
            min_val: -2.5,
            max_val: 0.1,
        },
        Activation::Celu { alpha: 1e-7 },
    ]) {
        let spec = activation_spec(act);
        assert_eq!(parse_activation_spec(&spec), Some(act), "{spec}");
    }
    for bad in [
        "",
        "nope",
        "relu(1)",
        "elu(1,2)",
        "softplus(1)",
        "elu(x)",
        "elu(1",
        "custom",
    ] {
        assert_eq!(parse_activation_spec(bad), None, "{bad}");
    }
    // A bare name means the default parameters.
    assert_eq!(parse_activation_spec("elu"), Some(Activation::elu()));
    assert_eq!(
        activation_spec(Activation::Softshrink { lambd: 2.0 }),
        "softshrink(2)"
    );
    assert_eq!(activation_spec(Activation::Tanhshrink), "tanhshrink");
    // Extreme constants print in exponent form, the shortest that reads back to the same bits.
    for (act, spec) in [
        (
            Activation::LeakyRelu {
                negative_slope: 1e-30,
            },
            "leaky_relu(1e-30)",
        ),
        (Activation::Elu { alpha: 1e-45 }, "elu(1e-45)"),
        (Activation::Celu { alpha: 2.5e20 }, "celu(2.5e20)"),
        (Activation::Swish { beta: f32::MAX }, "swish(3.4028235e38)"),
        (
            Activation::Softplus {
                beta: 1e-4,
                threshold: 1e16,
            },
            "softplus(0.0001,1e16)",
        ),
        (
            Activation::Hardtanh {
                min_val: -9.99e-5,
                max_val: 9.99e15,
            },
            "hardtanh(-9.99e-5,9990000000000000)",
        ),
        (
            Activation::Threshold {
                threshold: -0.0,
                value: 0.1,
            },
            "threshold(-0,0.1)",
        ),
    ] {
        assert_eq!(activation_spec(act), spec);
        let back = parse_activation_spec(spec).unwrap();
        assert_eq!(
            back.params().map(f32::to_bits),
            act.params().map(f32::to_bits),
            "{spec}"
        );
    }
}

#[test]
fn sixteen_bit_and_f64_tensors_load_converted() {
    let g = gpu();
    let mut net = Mlp::new(g, &[2, 3, 1], &[Activation::Relu], Loss::Mse, sgd(), 5).unwrap();
    let h16: Vec<u8> = W0_TORCH
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = B0
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [0.1f64, -0.2, 0.3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = concat!(
        r#"{"0.bias":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},"#,
        r#""0.weight":{"dtype":"F16","shape":[3,2],"data_offsets":[6,18]},"#,
        r#""2.bias":{"dtype":"F32","shape":[1],"data_offsets":[18,22]},"#,
        r#""2.weight":{"dtype":"F64","shape":[1,3],"data_offsets":[22,46]}}"#
    );
    let data = [bf16, h16, le(&B2), f64s].concat();
    net.load_weights(&raw(header, &data)).unwrap();
    let p = net.params().unwrap();
    assert_eq!(p[0].0, [0.5, 2.0, -0.75, -1.0, 0.25, 1.5]);
    assert_eq!(p[0].1, B0);
    assert_eq!(p[1].0, [0.1f64 as f32, -0.2f64 as f32, 0.3f64 as f32]);
}

fn invalid(r: actgpu::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::InvalidSafetensors { reason }) => reason,
        other => panic!("expected InvalidSafetensors, got {other:?}"),
    }
}

#[test]
fn truncated_and_corrupted_files_are_errors_never_panics() {
    let file = hand_built();
    for len in 0..file.len() {
        invalid(SafeTensors::parse(&file[..len]));
    }
    // One more byte: the tensors no longer cover the data.
    let mut long = file.clone();
    long.push(0);
    assert!(invalid(SafeTensors::parse(&long)).contains("cover"));
    // Every single-byte corruption of the header is an error or, where it still reads, a consistent file.
    let mut rng = Rng::new(3);
    for i in 0..344 {
        for _ in 0..4 {
            let mut bad = file.clone();
            bad[i] = (rng.next_u64() & 0xff) as u8;
            if let Ok(parsed) = SafeTensors::parse(&bad) {
                let data: usize = parsed.tensors.iter().map(|t| t.data.len()).sum();
                assert_eq!(data, 52);
            }
        }
    }
    // Whitespace before the object reads, as in the reference implementation.
    let spaced = raw("\n {\"__metadata__\":null}", &[]);
    assert!(SafeTensors::parse(&spaced).unwrap().tensors.is_empty());
    let d = le(&[0.0; 3]);
    let t = |body: &str| raw(&format!("{{\"a\":{body}}}"), &d);
    let cases = [
        (raw("[]", &d), "not a JSON object"),
        (raw("{\"a\":", &d), "JSON"),
        (raw("{\"__metadata__\":{\"k\":1}}", &[]), "not a string"),
        (raw("{\"__metadata__\":[]}", &[]), "not an object"),
        (
            raw("{\"__metadata__\":{},\"__metadata__\":{}}", &[]),
            "twice",
        ),
        (
            raw(
                concat!(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#,
                    r#""a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
                ),
                &d,
            ),
            "twice",
        ),
        (
            t(r#"{"dtype":"F32","shape":[2],"data_offsets":[0,12]}"#),
            "needs 8 bytes",
        ),
        (
            t(r#"{"dtype":"F32","shape":[3],"data_offsets":[4,16]}"#),
            "start at 0",
        ),
        (
            t(r#"{"dtype":"F32","shape":[3],"data_offsets":[12,0]}"#),
            "backwards",
        ),
        (
            t(r#"{"dtype":"F32","shape":[3],"data_offsets":[0,12,12]}"#),
            "not 2",
        ),
        (
            t(r#"{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}"#),
            "non-negative",
        ),
        (
            t(r#"{"dtype":"F32","shape":[3.0],"data_offsets":[0,12]}"#),
            "non-negative",
        ),
        (
            t(r#"{"dtype":3,"shape":[3],"data_offsets":[0,12]}"#),
            "not a string",
        ),
        (t(r#"{"shape":[3],"data_offsets":[0,12]}"#), "no \"dtype\""),
        (
            t(r#"{"dtype":"F32","data_offsets":[0,12]}"#),
            "no \"shape\"",
        ),
        (t(r#"{"dtype":"F32","shape":[3]}"#), "no \"data_offsets\""),
        (t("[]"), "not an object"),
        (
            t(r#"{"dtype":"Q7","shape":[3],"data_offsets":[0,12]}"#),
            "unknown dtype",
        ),
        // A huge shape of a sub-byte dtype with no data, and sub-byte elements that end mid-byte.
        (
            raw(
                r#"{"a":{"dtype":"F4","shape":[1000000,1000000],"data_offsets":[0,0]}}"#,
                &[],
            ),
            "needs 500000000000 bytes",
        ),
        (
            raw(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                &[0, 0],
            ),
            "needs 12 bits, not whole bytes",
        ),
        (
            raw(r#"{"__metadata__":{"k":"1","k":"2"}}"#, &[]),
            "\"k\" appears twice",
        ),
        (
            t(
                r#"{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,12]}"#,
            ),
            "overflows",
        ),
        (
            raw(
                concat!(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#,
                    r#""b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
                ),
                &d,
            ),
            "start at 8",
        ),
        // A repeated field: readers that keep the first and the last would see different shapes.
        (
            t(r#"{"dtype":"F32","shape":[3],"shape":[1,3],"data_offsets":[0,12]}"#),
            "\"shape\" appears twice",
        ),
    ];
    for (bytes, want) in cases {
        let reason = invalid(SafeTensors::parse(&bytes));
        assert!(reason.contains(want), "{reason:?} should mention {want:?}");
    }
    // A header length past the limit or the file, and a header that is not UTF-8.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    invalid(SafeTensors::parse(&huge));
    invalid(SafeTensors::parse(
        &raw("{\"\u{e9}\":1}", &[])
            .iter()
            .map(|&b| if b == 0xc3 { 0xff } else { b })
            .collect::<Vec<_>>(),
    ));
    // `"__metadata__": null` is no metadata, as in the reference implementation.
    let null = raw(r#"{"__metadata__":null}"#, &[]);
    let none = SafeTensors::parse(&null).unwrap();
    assert!(none.metadata.is_empty() && none.tensors.is_empty());
    // A finite F64 beyond f32's range would load as inf: refused; the largest that rounds to f32::MAX converts.
    let f64s = |v: f64| {
        raw(
            r#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
            &v.to_le_bytes(),
        )
    };
    for v in [1e39, -1e39] {
        let file = f64s(v);
        let parsed = SafeTensors::parse(&file).unwrap();
        let reason = invalid(parsed.tensor("a").unwrap().to_f32());
        assert!(reason.contains("beyond f32's range"), "{reason}");
    }
    for (v, want) in [
        (f64::from(f32::MAX), f32::MAX),
        (f64::INFINITY, f32::INFINITY),
    ] {
        let file = f64s(v);
        let parsed = SafeTensors::parse(&file).unwrap();
        assert_eq!(parsed.tensor("a").unwrap().to_f32().unwrap(), [want]);
    }
    // Sub-byte dtypes parse (their bits checked) but do not convert; the empty file is valid.
    let odd = t(r#"{"dtype":"F4","shape":[24],"data_offsets":[0,12]}"#);
    let odd = SafeTensors::parse(&odd).unwrap();
    assert!(matches!(
        odd.tensor("a").unwrap().to_f32(),
        Err(Error::TensorDTypeMismatch { ref got, .. }) if got == "F4"
    ));
    assert!(SafeTensors::parse(&raw("{}", &[]))
        .unwrap()
        .tensors
        .is_empty());
}

#[test]
fn mismatched_files_are_typed_errors_and_leave_the_network_unchanged() {
    let g = gpu();
    let mut net = Mlp::new(g, &[2, 3, 1], &[Activation::Relu], Loss::Mse, sgd(), 5).unwrap();
    let before = net.params().unwrap();
    let file = hand_built();
    let parsed = SafeTensors::parse(&file).unwrap();
    let rebuild =
        |skip: &str, rename: Option<(&str, &str)>, reshape: Option<(&str, Vec<usize>)>| {
            let mut tensors = Vec::new();
            let data: Vec<(String, Vec<usize>, Vec<f32>)> = parsed
                .tensors
                .iter()
                .filter(|t| t.name != skip)
                .map(|t| {
                    let name = match rename {
                        Some((from, to)) if t.name == from => to.to_string(),
                        _ => t.name.clone(),
                    };
                    let shape = match &reshape {
                        Some((n, s)) if t.name == *n => s.clone(),
                        _ => t.shape.clone(),
                    };
                    (name, shape, t.to_f32().unwrap())
                })
                .collect();
            for (name, shape, values) in &data {
                tensors.push(F32Tensor {
                    name,
                    shape,
                    data: values,
                });
            }
            serialize_f32(&tensors, &[]).unwrap()
        };
    let missing = rebuild("2.bias", None, None);
    assert_eq!(
        net.load_weights(&missing),
        Err(Error::MissingTensor {
            name: "2.bias".into()
        })
    );
    // PyTorch's [out, in] read as if it were ours: the shape names the expected transpose.
    let transposed = rebuild("", None, Some(("0.weight", vec![2, 3])));
    assert_eq!(
        net.load_weights(&transposed),
        Err(Error::TensorShapeMismatch {
            name: "0.weight".into(),
            expected: vec![3, 2],
            got: vec![2, 3],
        })
    );
    let extra = rebuild("", Some(("2.bias", "4.bias")), None);
    assert_eq!(
        net.load_weights(&extra),
        Err(Error::MissingTensor {
            name: "2.bias".into()
        })
    );
    let mut more = parsed
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.to_f32().unwrap()))
        .collect::<Vec<_>>();
    more.push(("4.weight".into(), vec![1], vec![0.0]));
    let more: Vec<F32Tensor> = more
        .iter()
        .map(|(name, shape, data)| F32Tensor { name, shape, data })
        .collect();
    assert!(matches!(
        net.load_weights(&serialize_f32(&more, &[]).unwrap()),
        Err(Error::InvalidArgument { .. })
    ));
    let ints = raw(
        concat!(
            r#"{"0.bias":{"dtype":"I32","shape":[3],"data_offsets":[0,12]},"#,
            r#""0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[12,36]},"#,
            r#""2.bias":{"dtype":"F32","shape":[1],"data_offsets":[36,40]},"#,
            r#""2.weight":{"dtype":"F32","shape":[1,3],"data_offsets":[40,52]}}"#
        ),
        &file[344..],
    );
    assert_eq!(
        net.load_weights(&ints),
        Err(Error::TensorDTypeMismatch {
            name: "0.bias".into(),
            expected: "F32, F16, BF16 or F64".into(),
            got: "I32".into(),
        })
    );
    assert!(matches!(
        net.load_weights(&file[..100]),
        Err(Error::InvalidSafetensors { .. })
    ));
    assert!(matches!(
        net.load_safetensors("/nonexistent/actgpu.safetensors"),
        Err(Error::Io { .. })
    ));
    assert_eq!(net.params().unwrap(), before);

    // A file of other sizes does not load, and one without activation metadata cannot be rebuilt.
    let mut small = Mlp::new(g, &[2, 4, 1], &[Activation::Relu], Loss::Mse, sgd(), 5).unwrap();
    assert!(matches!(
        small.load_weights(&file),
        Err(Error::TensorShapeMismatch { .. })
    ));
    let plain = rebuild("", None, None);
    assert!(matches!(
        Mlp::from_safetensors(g, &plain, Loss::Mse, sgd()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Mlp::from_safetensors(g, &file, Loss::Mse, sgd()).is_ok());
    // A learnable layer whose recorded parameter count is not 1 or its width.
    let prelu = |count: usize| {
        let w: Vec<f32> = vec![0.25; count];
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = parsed
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.to_f32().unwrap()))
            .collect();
        tensors.push(("1.weight".into(), vec![count], w));
        let views: Vec<F32Tensor> = tensors
            .iter()
            .map(|(name, shape, data)| F32Tensor { name, shape, data })
            .collect();
        let spec = format!("prelu({})", if count == 3 { 2 } else { count });
        serialize_f32(&views, &[("actgpu.activations", spec.as_str())]).unwrap()
    };
    assert!(Mlp::from_safetensors(g, &prelu(1), Loss::Mse, sgd()).is_ok());
    let reason = invalid(Mlp::from_safetensors(g, &prelu(3), Loss::Mse, sgd()));
    assert!(reason.contains("\"prelu(2)\" but has 3 units"), "{reason}");
    // 400,000 chained weights (3.2 million JSON values, under json::MAX_VALUES) for a network the metadata says
    // has two layers: refused in time linear in the number of tensors (reading layers until a weight was
    // missing, a lookup each, took quadratic time).
    let mut header = String::from(r#"{"__metadata__":{"actgpu.activations":"relu"}"#);
    for i in 0..400_000 {
        header.push_str(&format!(
            r#","{}.weight":{{"dtype":"F32","shape":[1,1],"data_offsets":[{},{}]}}"#,
            2 * i,
            4 * i,
            4 * i + 4
        ));
    }
    header.push('}');
    let data = vec![0u8; 1_600_000];
    let started = std::time::Instant::now();
    let reason = invalid(Mlp::from_safetensors(
        g,
        &raw(&header, &data),
        Loss::Mse,
        sgd(),
    ));
    assert!(reason.contains("lists 1 hidden layers"), "{reason}");
    eprintln!("400,000 tensors refused in {:?}", started.elapsed());
    // Writing refuses inconsistent tensors.
    assert!(matches!(
        serialize_f32(
            &[F32Tensor {
                name: "a",
                shape: &[2],
                data: &[1.0]
            }],
            &[]
        ),
        Err(Error::TensorShapeMismatch { .. })
    ));
    let one = F32Tensor {
        name: "a",
        shape: &[1],
        data: &[1.0],
    };
    assert!(serialize_f32(&[one, one], &[]).is_err());
    assert!(serialize_f32(&[one], &[("k", "1"), ("k", "2")]).is_err());
}

/// A run saved as a training checkpoint after 3 steps and resumed in a new network (another seed, so nothing
/// survives from its own initialisation) takes the same next 3 steps, bit for bit, as the run that never
/// stopped: weights, a learnable activation's parameter, the optimizer's moments and the step count all come
/// back, for every optimizer kind (plain SGD keeps no state). The file names the state as torch.optim does.
#[test]
fn a_training_checkpoint_resumes_the_run_bit_for_bit() {
    use actgpu::nn::Hidden;
    use actgpu::Learnable;
    let g = gpu();
    let sizes = [4, 6, 5, 3];
    let hidden = [
        Hidden::learnable(Learnable::Prelu, true),
        Hidden::Act(Activation::Gelu),
    ];
    let ce = Loss::SoftmaxCrossEntropy;
    let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..6)
        .map(|s| {
            let x = random_values(8 * 4, 1.0, DType::F32, 300 + s);
            (x, (0..8).map(|r| ((r + s) % 3) as u32).collect())
        })
        .collect();
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        nesterov: true,
        ..Sgd::new(0.05)
    });
    for (opt, state) in [
        (sgd(), None),
        (momentum, Some("momentum_buffer")),
        (Optimizer::Adam(Adam::new(0.01)), Some("exp_avg_sq")),
        (Optimizer::Adam(Adam::adamw(0.01)), Some("exp_avg")),
    ] {
        let mut straight = Mlp::with_layers(g, &sizes, &hidden, ce, opt, 5).unwrap();
        let mut first = Mlp::with_layers(g, &sizes, &hidden, ce, opt, 5).unwrap();
        for (x, t) in &batches {
            straight.train_step_classes(x, t).unwrap();
        }
        for (x, t) in &batches[..3] {
            first.train_step_classes(x, t).unwrap();
        }
        let bytes = first.to_training_checkpoint_bytes().unwrap();
        let file = SafeTensors::parse(&bytes).unwrap();
        assert_eq!(file.metadata("actgpu.step"), Some("3"));
        if let Some(state) = state {
            let name = format!("0.weight.{state}");
            let t = file.tensors.iter().find(|t| t.name == name).unwrap();
            assert_eq!(
                t.shape,
                [6, 4],
                "{opt:?}: a weight's state is laid out as the weight"
            );
            assert!(file
                .tensors
                .iter()
                .any(|t| t.name == format!("1.weight.{state}")));
        }
        let mut resumed = Mlp::with_layers(g, &sizes, &hidden, ce, opt, 99).unwrap();
        resumed.load_training_checkpoint_bytes(&bytes).unwrap();
        assert_eq!(resumed.steps(), 3);
        for (x, t) in &batches[3..] {
            resumed.train_step_classes(x, t).unwrap();
        }
        let (a, b) = (straight.params().unwrap(), resumed.params().unwrap());
        for (l, ((wa, ba), (wb, bb))) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                (bits(wa), bits(ba)),
                (bits(wb), bits(bb)),
                "{opt:?} layer {l}"
            );
        }
        assert_eq!(
            straight.activation_params().unwrap(),
            resumed.activation_params().unwrap(),
            "{opt:?}"
        );
        assert_eq!(
            straight.loss().unwrap().to_bits(),
            resumed.loss().unwrap().to_bits()
        );
        // A network whose optimizer keeps no state refuses a file that holds some, and stays as it was.
        if state.is_some() {
            let mut plain = Mlp::with_layers(g, &sizes, &hidden, ce, sgd(), 1).unwrap();
            let before = (plain.params().unwrap(), plain.activation_params().unwrap());
            assert!(matches!(
                plain.load_training_checkpoint_bytes(&bytes),
                Err(Error::InvalidArgument { .. })
            ));
            let after = (plain.params().unwrap(), plain.activation_params().unwrap());
            assert_eq!(
                (plain.steps(), after),
                (0, before),
                "a refused file changes nothing"
            );
            // Its weights alone load as a weights-only file would (the state tensors are skipped).
            plain.load_weights(&bytes).unwrap();
            assert_eq!(plain.params().unwrap(), first.params().unwrap());
            let rebuilt = Mlp::from_safetensors(g, &bytes, ce, sgd()).unwrap();
            assert_eq!(rebuilt.params().unwrap(), first.params().unwrap());
        }
    }
    // Mismatched optimizers (named as such) and weights-only files are typed errors.
    let mut adam =
        Mlp::with_layers(g, &sizes, &hidden, ce, Optimizer::Adam(Adam::new(0.01)), 1).unwrap();
    let sgd_file = Mlp::with_layers(g, &sizes, &hidden, ce, momentum, 1)
        .unwrap()
        .to_training_checkpoint_bytes()
        .unwrap();
    assert!(matches!(
        adam.load_training_checkpoint_bytes(&sgd_file),
        Err(Error::InvalidArgument { .. })
    ));
    let weights_only = adam.to_safetensors_bytes().unwrap();
    assert!(matches!(
        adam.load_training_checkpoint_bytes(&weights_only),
        Err(Error::InvalidSafetensors { .. })
    ));
    // A step count past the optimizers' u32 is refused when loaded, not an overflow at the next train_step; the
    // last step that can be taken is taken, and the one past it refused; a file at that last step still loads.
    let mut counted = Mlp::with_layers(g, &sizes, &hidden, ce, momentum, 1).unwrap();
    for step in ["4294967296", "18446744073709551615", "-1", "three"] {
        assert!(
            matches!(
                counted.load_training_checkpoint_bytes(&with_step(&sgd_file, step)),
                Err(Error::InvalidSafetensors { .. })
            ),
            "step {step}"
        );
    }
    counted
        .load_training_checkpoint_bytes(&with_step(&sgd_file, "4294967294"))
        .unwrap();
    assert_eq!(counted.steps(), u64::from(u32::MAX) - 1);
    let (x, t) = &batches[0];
    counted.train_step_classes(x, t).unwrap();
    assert!(matches!(
        counted.train_step_classes(x, t),
        Err(Error::InvalidArgument { .. })
    ));
    counted
        .load_training_checkpoint_bytes(&with_step(&sgd_file, "4294967295"))
        .unwrap();
    assert_eq!(counted.steps(), u64::from(u32::MAX));
}

/// `bytes` (a safetensors file) with the value of its header's `"actgpu.step"` replaced by `step`.
fn with_step(bytes: &[u8], step: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let key = header.find("\"actgpu.step\"").unwrap() + "\"actgpu.step\"".len();
    let open = key + header[key..].find('"').unwrap();
    let close = open + 1 + header[open + 1..].find('"').unwrap();
    let edited = format!("{}\"{step}\"{}", &header[..open], &header[close + 1..]);
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// A training checkpoint resumes the network it was saved from: into one of other activations or sizes, or with
/// another kind of optimizer, it is refused naming both (before, other activations loaded silently and another
/// optimizer read as a missing state tensor). Metadata that lists fewer hidden layers than the file's linear
/// layers is named as the metadata's fault, not as an unexpected tensor.
#[test]
fn a_training_checkpoint_is_refused_by_another_network_or_optimizer() {
    let g = gpu();
    let saved = trained(&SIZES, &HIDDEN, 41)
        .to_training_checkpoint_bytes()
        .unwrap();
    let refused = |net: &mut Mlp, what: &str, words: &[&str]| match net
        .load_training_checkpoint_bytes(&saved)
    {
        Err(Error::InvalidArgument { op, reason }) => {
            assert_eq!(op, "Mlp::load_training_checkpoint", "{what}");
            for w in words {
                assert!(reason.contains(w), "{what}: {reason}");
            }
        }
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    let adam = Optimizer::Adam(Adam::new(0.01));
    let ce = Loss::SoftmaxCrossEntropy;
    let relu = [Activation::Relu, HIDDEN[1]];
    let mut other_acts = Mlp::new(g, &SIZES, &relu, ce, adam, 1).unwrap();
    refused(
        &mut other_acts,
        "activations",
        &["actgpu.activations", "relu"],
    );
    let momentum = Optimizer::Sgd(Sgd {
        momentum: 0.9,
        ..Sgd::new(0.1)
    });
    let mut other_opt = Mlp::new(g, &SIZES, &HIDDEN, ce, momentum, 1).unwrap();
    refused(
        &mut other_opt,
        "optimizer",
        &["\"adam\"", "\"sgd_momentum\""],
    );
    // The same network and optimizer kind resume, whatever spelling of the metadata the readers accept.
    let mut same = Mlp::new(g, &SIZES, &HIDDEN, ce, adam, 1).unwrap();
    same.load_training_checkpoint_bytes(&saved).unwrap();
    let parsed = SafeTensors::parse(&saved).unwrap();
    let all: Vec<(String, Vec<usize>, Vec<f32>)> = parsed
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.to_f32().unwrap()))
        .collect();
    let views: Vec<F32Tensor> = all
        .iter()
        .map(|(name, shape, data)| F32Tensor { name, shape, data })
        .collect();
    let respelled: Vec<(&str, &str)> = parsed
        .metadata
        .iter()
        .map(|(k, v)| match k.as_str() {
            "actgpu.sizes" => (k.as_str(), "5, 7, 6, 3"),
            "actgpu.activations" => (k.as_str(), "gelu, softplus(2.0, 15.0)"),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    let respelled = serialize_f32(&views, &respelled).unwrap();
    same.load_training_checkpoint_bytes(&respelled).unwrap();

    // Weights of three linear layers whose metadata names one hidden activation.
    let file = SafeTensors::parse(&saved).unwrap();
    let owned: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .tensors
        .iter()
        .filter(|t| !t.name.contains("exp_avg"))
        .map(|t| (t.name.clone(), t.shape.clone(), t.to_f32().unwrap()))
        .collect();
    let tensors: Vec<F32Tensor> = owned
        .iter()
        .map(|(name, shape, data)| F32Tensor { name, shape, data })
        .collect();
    let short = serialize_f32(
        &tensors,
        &[("actgpu.sizes", "5,7,6,3"), ("actgpu.activations", "gelu")],
    )
    .unwrap();
    let reason = invalid(Mlp::from_safetensors(g, &short, ce, sgd()));
    assert!(
        reason.contains("lists 1 hidden layers") && reason.contains("\"4.weight\""),
        "{reason}"
    );
}
