//! The per-epoch and per-event files of a run directory: `metrics.csv` (one row per epoch
//! and model, a column per loss term), `metrics.jsonl` (the same as JSON lines) and
//! `events.jsonl` (what the callbacks did, and every file saved), in the order they happened.

use kd_train::{EpochMetrics, FitOutcome};

/// Everything a run logged so far.
#[derive(Debug, Default)]
pub struct RunLog {
    rows: Vec<(String, EpochMetrics)>,
    events: Vec<serde_json::Value>,
}

impl RunLog {
    /// Adds the epochs and callback events of `model`'s training.
    pub fn add_fit(&mut self, model: &str, outcome: &FitOutcome) {
        for m in &outcome.history.epochs {
            self.rows.push((model.to_string(), m.clone()));
        }
        for e in &outcome.events {
            self.event(model, e.epoch, &e.action, &e.detail);
        }
    }

    /// Every epoch logged, with its model's role.
    pub fn rows(&self) -> &[(String, EpochMetrics)] {
        &self.rows
    }

    /// Records one event of `model` after `epoch`.
    pub fn event(&mut self, model: &str, epoch: usize, action: &str, detail: &str) {
        self.events.push(serde_json::json!({
            "model": model, "epoch": epoch, "action": action, "detail": detail,
        }));
    }

    /// `metrics.csv`: fixed columns, then one column per loss term seen in any row.
    pub fn metrics_csv(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for (_, m) in &self.rows {
            for (name, _) in &m.parts {
                if !parts.contains(&name.as_str()) {
                    parts.push(name);
                }
            }
        }
        let mut csv = String::from(
            "model,epoch,loss,accuracy,val_loss,val_accuracy,val_cross_entropy,lr,seconds,train_images_per_s",
        );
        for p in &parts {
            csv += &format!(",{p}");
        }
        csv.push('\n');
        for (model, m) in &self.rows {
            csv += &format!(
                "{model},{},{},{},{},{},{},{},{},{}",
                m.epoch,
                m.loss,
                m.accuracy,
                m.val_loss,
                m.val_accuracy,
                m.val_cross_entropy,
                m.lr,
                m.seconds,
                m.train_images_per_s
            );
            for p in &parts {
                csv.push(',');
                if let Some((_, v)) = m.parts.iter().find(|(n, _)| n == p) {
                    csv += &v.to_string();
                }
            }
            csv.push('\n');
        }
        csv
    }

    /// `metrics.jsonl`: one object per epoch with its `phase` (the model's role).
    pub fn metrics_jsonl(&self) -> String {
        self.rows
            .iter()
            .map(|(model, m)| {
                let mut line = serde_json::to_value(m).expect("metrics serialize");
                line["phase"] = model.as_str().into();
                line.to_string() + "\n"
            })
            .collect()
    }

    /// `events.jsonl`: one object per event (`model`, `epoch`, `action`, `detail`).
    pub fn events_jsonl(&self) -> String {
        self.events.iter().map(|e| e.to_string() + "\n").collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kd_train::{History, TrainEvent};

    fn epoch(epoch: usize, parts: &[(&str, f64)]) -> EpochMetrics {
        EpochMetrics {
            epoch,
            loss: 0.5,
            accuracy: 0.75,
            val_loss: 0.25,
            val_accuracy: 0.875,
            val_cross_entropy: 0.3,
            lr: 1e-3,
            parts: parts.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            seconds: 2.0,
            train_images_per_s: 100.0,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn csv_has_a_column_per_loss_term_and_events_keep_their_order() {
        let mut log = RunLog::default();
        let fit = |epochs: Vec<EpochMetrics>, events: Vec<TrainEvent>| FitOutcome {
            history: History { epochs },
            events,
            stopped_epoch: None,
            seconds: 1.0,
            complete: true,
        };
        log.add_fit("teacher", &fit(vec![epoch(1, &[])], vec![]));
        log.event("teacher", 1, "saved", "teacher.safetensors");
        let stop = TrainEvent {
            epoch: 2,
            action: "early_stopping".into(),
            detail: "x".into(),
        };
        log.add_fit(
            "distilled",
            &fit(
                vec![
                    epoch(1, &[("student_loss", 1.5)]),
                    epoch(2, &[("student_loss", 0.5)]),
                ],
                vec![stop],
            ),
        );
        let csv = log.metrics_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "model,epoch,loss,accuracy,val_loss,val_accuracy,val_cross_entropy,lr,seconds,train_images_per_s,student_loss"
        );
        assert_eq!(lines[1], "teacher,1,0.5,0.75,0.25,0.875,0.3,0.001,2,100,");
        assert_eq!(
            lines[3],
            "distilled,2,0.5,0.75,0.25,0.875,0.3,0.001,2,100,0.5"
        );
        let events: Vec<serde_json::Value> = log
            .events_jsonl()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events[0]["action"], "saved");
        assert_eq!(
            (events[1]["model"].as_str(), events[1]["epoch"].as_u64()),
            (Some("distilled"), Some(2))
        );
        assert_eq!(log.metrics_jsonl().lines().count(), 3);
    }
}
