//! A Keras-style model summary (`model.summary()`): one row per layer with its output shape
//! and parameter count, then total, trainable and non-trainable parameters. Output shapes
//! come from running one zero image through the model; parameters are attributed to the
//! layer whose name prefixes their state-dict key. Batch-norm running statistics count as
//! non-trainable, as Keras counts its moving mean and variance.

use std::fmt;

use tch::{Kind, Tensor};

use crate::model::Model;

/// One row of a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// Layer name (state-dict prefix).
    pub name: String,
    /// Layer type.
    pub kind: &'static str,
    /// Output shape without the batch dimension.
    pub output_shape: Vec<i64>,
    /// Parameters owned by the layer.
    pub parameters: usize,
}

/// A model's layers and parameter totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Title, e.g. the model's role (`teacher`).
    pub title: String,
    /// Input shape without the batch dimension.
    pub input_shape: Vec<i64>,
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
    /// Trainable parameters.
    pub trainable: usize,
    /// Non-trainable parameters (frozen weights, batch-norm statistics).
    pub non_trainable: usize,
}

impl Summary {
    /// Summarizes `model` for inputs `[c, h, w]`.
    pub fn new(title: &str, model: &Model, input_shape: [usize; 3]) -> Self {
        let vars = model.var_store().variables();
        let device = model.var_store().device();
        let [c, h, w] = input_shape.map(|d| d as i64);
        let mut rows = Vec::new();
        tch::no_grad(|| {
            let x = Tensor::zeros([1, c, h, w], (Kind::Float, device));
            let _logits = model.layers().forward_each(&x, false, |layer, out| {
                let prefix = format!("{}.", layer.name);
                rows.push(SummaryRow {
                    name: layer.name.clone(),
                    kind: layer.kind,
                    output_shape: out.size()[1..].to_vec(),
                    parameters: vars
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(_, t)| t.numel())
                        .sum(),
                });
            });
        });
        let count = |trainable: bool| {
            vars.values()
                .filter(|t| t.requires_grad() == trainable)
                .map(|t| t.numel())
                .sum()
        };
        Self {
            title: title.to_string(),
            input_shape: vec![c, h, w],
            rows,
            trainable: count(true),
            non_trainable: count(false),
        }
    }

    /// All parameters.
    pub fn total(&self) -> usize {
        self.trainable + self.non_trainable
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn shape(dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("(None, {})", dims.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule =
            |f: &mut fmt::Formatter<'_>, ch: char| writeln!(f, "{}", ch.to_string().repeat(72));
        writeln!(
            f,
            "Model: \"{}\"  input {}",
            self.title,
            shape(&self.input_shape)
        )?;
        rule(f, '_')?;
        writeln!(
            f,
            "{:<34}{:<26}{:>12}",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        rule(f, '=')?;
        for row in &self.rows {
            writeln!(
                f,
                "{:<34}{:<26}{:>12}",
                format!("{} ({})", row.name, row.kind),
                shape(&row.output_shape),
                thousands(row.parameters)
            )?;
        }
        rule(f, '=')?;
        writeln!(f, "Total params: {}", thousands(self.total()))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable))?;
        writeln!(f, "Non-trainable params: {}", thousands(self.non_trainable))?;
        rule(f, '_')
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits_like_keras() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(5_130), "5,130");
        assert_eq!(thousands(20_029_514), "20,029,514");
    }
}
