//! A teacher's classes mapped onto the dataset's (`teacher.class_map`): an ImageNet teacher
//! has 1,000 classes, CIFAR-10 has 10. The map is either a list of teacher class indices,
//! one per dataset class in the dataset's order, or a table from teacher class to dataset
//! class, where several teacher classes may feed one dataset class (every ImageNet dog breed
//! to CIFAR's "dog"). A dataset class fed by classes `S` gets the logit
//! `logsumexp_{j in S} z_j`: its softmax probability is then the sum of theirs, renormalized
//! over the mapped classes (the teacher's distribution conditioned on the dataset's label
//! set). A class fed by one teacher class keeps that class's logit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use crate::error::{invalid, Result};

/// How `teacher.class_map` is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassMapConfig {
    /// The teacher class of each dataset class, in the dataset's class order.
    Indices(Vec<usize>),
    /// Teacher class (its index, as a key) to dataset class.
    Table(BTreeMap<String, usize>),
}

/// A checked class map: for each dataset class, the teacher classes that feed it.
#[derive(Debug)]
pub struct ClassMap {
    groups: Vec<Vec<i64>>,
}

const KEY: &str = "teacher.class_map";

impl ClassMap {
    /// The map `config` states for a dataset of `dataset_classes` classes; every dataset
    /// class must be fed by at least one teacher class.
    pub fn new(config: &ClassMapConfig, dataset_classes: usize) -> Result<Self> {
        let mut groups = vec![Vec::new(); dataset_classes];
        match config {
            ClassMapConfig::Indices(indices) => {
                if indices.len() != dataset_classes {
                    return Err(invalid(
                        KEY,
                        &format!("one teacher class per dataset class ({dataset_classes})"),
                        format!("{} indices", indices.len()),
                    ));
                }
                for (group, &t) in groups.iter_mut().zip(indices) {
                    group.push(t as i64);
                }
            }
            ClassMapConfig::Table(table) => {
                for (key, &d) in table {
                    let t: usize = key.parse().map_err(|_| {
                        invalid(KEY, "teacher class indices as keys", format!("{key:?}"))
                    })?;
                    let group = groups.get_mut(d).ok_or_else(|| {
                        invalid(
                            &format!("{KEY}.{key}"),
                            &format!("a dataset class below {dataset_classes}"),
                            d,
                        )
                    })?;
                    group.push(t as i64);
                }
            }
        }
        let empty: Vec<usize> = (0..dataset_classes)
            .filter(|&d| groups[d].is_empty())
            .collect();
        if !empty.is_empty() {
            return Err(invalid(
                KEY,
                "at least one teacher class for every dataset class",
                format!("none for dataset classes {empty:?}"),
            ));
        }
        Ok(Self { groups })
    }

    /// Checks the map against a teacher returning `teacher_classes` logits: every index
    /// must be one of them.
    pub fn check(&self, teacher_classes: usize) -> Result<()> {
        let top = self.groups.iter().flatten().max().copied().unwrap_or(0);
        if top as usize >= teacher_classes {
            return Err(invalid(
                KEY,
                &format!("teacher classes below {teacher_classes} (the teacher's outputs)"),
                format!("teacher class {top}"),
            ));
        }
        Ok(())
    }

    /// The dataset classes it makes.
    pub fn classes(&self) -> usize {
        self.groups.len()
    }

    /// What it does, for logs and reports, e.g. "teacher classes 1000 -> 10 (12 used)".
    pub fn describe(&self, teacher_classes: usize) -> String {
        let used = self.groups.iter().map(Vec::len).sum::<usize>();
        format!(
            "teacher classes {teacher_classes} -> {} ({used} used)",
            self.classes()
        )
    }
}

impl ModuleT for ClassMap {
    /// The dataset's logits `[b, classes]` from the teacher's `[b, teacher classes]`.
    fn forward_t(&self, logits: &Tensor, _train: bool) -> Tensor {
        let device = logits.device();
        let columns: Vec<Tensor> = self
            .groups
            .iter()
            .map(|group| {
                let index = Tensor::from_slice(group).to_device(device);
                let fed = logits.index_select(1, &index);
                if group.len() == 1 {
                    fed
                } else {
                    fed.to_kind(Kind::Float)
                        .logsumexp([1], true)
                        .to_kind(logits.kind())
                }
            })
            .collect();
        Tensor::cat(&columns, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map written as `json` (TOML's tables and arrays read the same).
    fn map(json: &str, classes: usize) -> Result<ClassMap> {
        let config: ClassMapConfig = serde_json::from_str(json).expect("valid JSON");
        ClassMap::new(&config, classes)
    }

    #[test]
    fn a_map_that_misses_a_dataset_class_or_overruns_the_teacher_is_refused() {
        let missing = map(r#"{"0": 0, "4": 2}"#, 3).unwrap_err();
        assert!(
            missing.to_string().contains("none for dataset classes [1]"),
            "{missing}"
        );
        let short = map("[3, 1]", 3).unwrap_err();
        assert!(short.to_string().contains("got 2 indices"), "{short}");
        let beyond = map(r#"{"7": 5}"#, 3).unwrap_err();
        assert!(
            beyond.to_string().contains("teacher.class_map.7"),
            "{beyond}"
        );
        let named = map(r#"{"dog": 0}"#, 1).unwrap_err();
        assert!(named.to_string().contains("\"dog\""), "{named}");
        let ok = map("[999, 5, 1000]", 3).unwrap();
        let out_of_range = ok.check(1000).unwrap_err();
        assert!(
            out_of_range.to_string().contains("teacher class 1000"),
            "{out_of_range}"
        );
        ok.check(1001).unwrap();
    }
}
