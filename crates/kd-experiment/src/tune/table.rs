//! The leaderboard as Markdown: `tune.md`, and the table `kd-cli tune` prints.

use std::fmt::Write;

use super::leaderboard::Leaderboard;

impl Leaderboard {
    /// The report as Markdown: what was tuned, the table, the winner against the runner-up,
    /// the failures.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let rungs: Vec<String> = self.rungs.iter().map(usize::to_string).collect();
        let sizes = super::halving::rung_sizes(self.configurations, self.rungs.len(), self.eta);
        let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
        let _ = writeln!(
            out,
            "# Tune `{}`{}\n",
            self.name,
            if self.complete { "" } else { " (unfinished)" }
        );
        let _ = writeln!(
            out,
            "{} configurations × {} seeds ({}), rungs of {} epochs, η = {}: {} configurations per rung. \
             Ranked by the best validation accuracy so far, mean over the seeds; the test set is read \
             for the finalists (the last rung's configurations) and the scratch students only. \
             Accuracies in %, mean ± std over the seeds; gains are paired by seed, with their 95 % t-interval.\n",
            self.configurations,
            self.seeds.len(),
            seeds.join(", "),
            rungs.join(", "),
            self.eta,
            sizes.join(" → ")
        );
        self.table(&mut out);
        if let Some(d) = &self.winner_vs_runner_up {
            let _ = writeln!(out, "\nWinner vs runner-up (test): {}", d.text);
        }
        let failed: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.rungs.iter().flat_map(move |c| {
                    c.failed
                        .iter()
                        .map(move |(s, why)| format!("- #{} seed {s}: {why}", r.trial))
                })
            })
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(out, "\nFailed:\n{}", failed.join("\n"));
        }
        out
    }

    fn table(&self, out: &mut String) {
        let n = self.seeds.len();
        let rung_heads: Vec<String> = self
            .rungs
            .iter()
            .enumerate()
            .map(|(i, e)| format!("rung {} ({e} ep)", i + 1))
            .collect();
        let (versus, versus_align) = match self.baseline {
            Some(b) => (format!(" gain over #{b} (test) |"), "---|"),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            out,
            "| # | configuration | {} | test | gain over scratch (test) |{versus}",
            rung_heads.join(" | ")
        );
        let aligns = vec!["---:"; self.rungs.len()].join("|");
        let _ = writeln!(out, "|---:|---|{aligns}|---:|---|{versus_align}");
        for row in &self.rows {
            let mut cells: Vec<String> = row.rungs.iter().map(|c| c.cell(n)).collect();
            cells.resize(self.rungs.len(), String::new());
            let test = row.test.as_ref().map_or(String::new(), |t| t.cell(n));
            let gain = row
                .gain_over_scratch
                .as_ref()
                .map_or(String::new(), |g| g.text.clone());
            let versus = match (self.baseline, &row.gain_over_baseline) {
                (None, _) => String::new(),
                (Some(_), g) => format!(" {} |", g.as_ref().map_or("", |g| &g.text)),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {test} | {gain} |{versus}",
                row.trial,
                row.label,
                cells.join(" | ")
            );
        }
        let blank = vec![""; self.rungs.len()].join(" | ");
        let end = if self.baseline.is_some() { " |" } else { "" };
        let _ = writeln!(
            out,
            "| | scratch student (base config, labels only) | {blank} | {} | |{end}",
            self.scratch.cell(n)
        );
        let _ = writeln!(
            out,
            "| | teacher | {blank} | {} | |{end}",
            self.teacher.cell(n)
        );
    }
}
