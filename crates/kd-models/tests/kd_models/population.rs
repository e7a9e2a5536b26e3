//! A fused population of students ([`kd_models::population`]) against its members' solo
//! students in float32: the same logits, the same gradients, the same weights back out.
//! Grouped and plain convolutions may round differently, so the comparisons are within an
//! absolute + relative tolerance a float32 computation meets on any x86-64 CPU; members
//! computing as alone (`Layout::Members`) and the weights' round trip are exact.

use kd_models::population::{population_cross_entropy, Layout, StudentPopulation};
use kd_models::{Model, ModelConfig, StudentConfig};
use tch::{Device, Kind, Tensor};

/// The quickstart's student: 3 blocks of two 3x3 convs, width 16.
fn config() -> StudentConfig {
    StudentConfig {
        blocks: 3,
        convs_per_block: 2,
        width: 16,
    }
}

/// K solo students of [`config`] for 28x28 grey images, each with its own seed's weights.
fn solos(k: i64) -> Vec<Model> {
    (0..k)
        .map(|seed| {
            tch::manual_seed(100 + seed);
            Model::new(&ModelConfig::Student(config()), 1, 28, 10, Device::Cpu).unwrap()
        })
        .collect()
}

fn population(solos: &[Model]) -> StudentPopulation {
    let stores: Vec<&tch::nn::VarStore> = solos.iter().map(Model::var_store).collect();
    StudentPopulation::stack(&config(), &stores, Device::Cpu).unwrap()
}

/// |a - b| <= 1e-5 + 1e-4·|b| everywhere; the worst ratio to that bound.
fn close(a: &Tensor, b: &Tensor, what: &str) -> f64 {
    assert_eq!(a.size(), b.size(), "{what}");
    let bound = b.abs() * 1e-4 + 1e-5;
    let worst = ((a - b).abs() / bound).max().double_value(&[]);
    assert!(worst <= 1.0, "{what}: {worst} times the tolerance");
    worst
}

fn batch() -> (Tensor, Tensor) {
    tch::manual_seed(7);
    let images = Tensor::rand([8, 1, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [8], (Kind::Int64, Device::Cpu));
    (images, labels)
}

#[test]
fn each_member_computes_its_solo_students_logits() {
    let (images, _) = batch();
    for k in [1, 5] {
        let solos = solos(k);
        let pop = population(&solos);
        let logits = pop.forward_t(&images);
        assert_eq!(logits.size(), [k, 8, 10]);
        for (m, solo) in solos.iter().enumerate() {
            let expected = solo.forward_t(&images, false);
            if k == 1 {
                // One member computes exactly as its solo student.
                assert!(logits.get(0).equal(&expected));
            }
            close(
                &logits.get(m as i64),
                &expected,
                &format!("K={k} member {m}"),
            );
        }
    }
}

#[test]
fn one_summed_loss_gives_each_member_its_solo_gradient() {
    let (images, labels) = batch();
    for layout in [Layout::Grouped, Layout::Members] {
        let solos = solos(5);
        let refs: Vec<&Model> = solos.iter().collect();
        let pop = StudentPopulation::of_models(&config(), &refs, layout).unwrap();
        population_cross_entropy(&pop.forward_t(&images), &labels).backward();
        let grads = pop.var_store().variables();
        for (m, solo) in solos.iter().enumerate() {
            solo.forward_t(&images, true)
                .cross_entropy_for_logits(&labels)
                .backward();
            for (name, weight) in solo.var_store().variables() {
                let stacked = grads[&name].grad();
                let mine = if name.starts_with("classifier") {
                    stacked.get(m as i64)
                } else {
                    stacked.chunk(5, 0)[m].shallow_clone()
                };
                let what = format!("{layout:?} member {m} {name}");
                if layout == Layout::Members {
                    // Each member computing as alone: its solo gradient to the last bit.
                    assert!(mine.equal(&weight.grad()), "{what}");
                }
                close(&mine, &weight.grad(), &what);
            }
        }
    }
}

#[test]
fn a_member_comes_back_out_with_its_own_weights_exactly() {
    let solos = solos(3);
    let pop = population(&solos);
    assert_eq!(pop.members(), 3);
    for (m, solo) in solos.iter().enumerate() {
        let vars = solo.var_store().variables();
        let out = pop.member(m);
        assert_eq!(out.len(), vars.len());
        for (name, t) in out {
            assert!(t.equal(&vars[&name]), "member {m} {name}");
        }
    }
    let none: [&tch::nn::VarStore; 0] = [];
    assert!(StudentPopulation::stack(&config(), &none, Device::Cpu).is_err());
}
