//! `f64` in JSON, infinities and NaN included: finite values are numbers (serde_json's
//! `float_roundtrip` reads them back to the same bits), the others the strings `"inf"`,
//! `"-inf"` and `"NaN"` — plain JSON has no literal for them. Use with
//! `#[serde(with = "crate::json_float")]`.

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        s.serialize_f64(*value)
    } else if value.is_nan() {
        s.serialize_str("NaN")
    } else if *value > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(v) => Ok(v),
        NumberOrText::Text(t) => match t.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"NaN\", got {other:?}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Holder(#[serde(with = "super")] f64);

    #[test]
    fn every_value_round_trips_to_the_same_bits() {
        for v in [
            0.1,
            1.0 / 3.0,
            -2.5e-308,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let json = serde_json::to_string(&Holder(v)).unwrap();
            let back: Holder = serde_json::from_str(&json).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits(), "{json}");
        }
        let nan: Holder =
            serde_json::from_str(&serde_json::to_string(&Holder(f64::NAN)).unwrap()).unwrap();
        assert!(nan.0.is_nan());
        assert!(serde_json::from_str::<Holder>("\"lots\"").is_err());
    }
}
