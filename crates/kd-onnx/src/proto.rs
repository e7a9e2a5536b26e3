//! Building blocks of an ONNX file (`onnx/onnx.proto`, IR version 8): tensors, attributes,
//! nodes and typed graph inputs, as the protobuf messages that `prost` encodes
//! (`tract_onnx::pb`, generated from ONNX's own `.proto`).

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::type_proto::{self, Value};
use tract_onnx::pb::{
    AttributeProto, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Element types kd writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    U8,
    I8,
    I32,
    I64,
}

impl Elem {
    fn data_type(self) -> DataType {
        match self {
            Elem::F32 => DataType::Float,
            Elem::U8 => DataType::Uint8,
            Elem::I8 => DataType::Int8,
            Elem::I32 => DataType::Int32,
            Elem::I64 => DataType::Int64,
        }
    }
}

/// A constant tensor from its little-endian bytes (`raw_data`, the compact form).
fn tensor(name: &str, elem: Elem, dims: &[i64], raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: elem.data_type() as i32,
        raw_data,
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, Elem::F32, dims, raw)
}

pub fn i8_tensor(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    let raw = data.iter().map(|&v| v as u8).collect();
    tensor(name, Elem::I8, dims, raw)
}

pub fn u8_tensor(name: &str, dims: &[i64], data: &[u8]) -> TensorProto {
    tensor(name, Elem::U8, dims, data.to_vec())
}

pub fn i32_tensor(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, Elem::I32, dims, raw)
}

pub fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, Elem::I64, dims, raw)
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

pub fn node(
    op_type: &str,
    inputs: &[impl AsRef<str>],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> NodeProto {
    let attribute = attrs
        .iter()
        .map(|(name, value)| {
            let mut a = AttributeProto {
                name: (*name).into(),
                ..Default::default()
            };
            match value {
                Attr::Int(i) => {
                    a.r#type = AttributeType::Int as i32;
                    a.i = *i;
                }
                Attr::Ints(v) => {
                    a.r#type = AttributeType::Ints as i32;
                    a.ints = v.clone();
                }
                Attr::Float(f) => {
                    a.r#type = AttributeType::Float as i32;
                    a.f = *f;
                }
            }
            a
        })
        .collect();
    NodeProto {
        op_type: op_type.into(),
        input: inputs.iter().map(|s| s.as_ref().to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// A float graph input or output whose first dimension is the symbolic `batch`.
pub fn batched_f32(name: &str, rest: &[i64]) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
        ..Default::default()
    };
    let dims = std::iter::once(batch).chain(rest.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims.collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
