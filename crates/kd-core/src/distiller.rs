//! [`Distiller`]: a frozen teacher, a student and a distillation loss, as the seed's Keras
//! `Distiller(keras.Model)` pairs them, without its optimizer: a training step asks it for
//! the student's logits and the loss, and minimizes the loss with whatever optimizer the
//! caller owns (kd-train's loop, or the user's own).

use kd_models::Model;
use tch::Tensor;

use crate::loss::{DistillLoss, LossParts};

/// A teacher frozen at construction, a student, and the loss between them.
#[derive(Debug)]
pub struct Distiller {
    teacher: Model,
    student: Model,
    loss: Box<dyn DistillLoss>,
}

impl Distiller {
    /// Pairs `teacher` (frozen here: its parameters stop requiring gradients) with `student`.
    pub fn new(mut teacher: Model, student: Model, loss: Box<dyn DistillLoss>) -> Self {
        teacher.freeze();
        Self {
            teacher,
            student,
            loss,
        }
    }

    /// The teacher's logits for `images`: inference mode, no gradient.
    pub fn teacher_logits(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| self.teacher.forward_t(images, false))
    }

    /// The student's logits for `images` (training mode) and the loss against the teacher's
    /// logits on the same images and `labels`.
    pub fn step(&self, images: &Tensor, labels: &Tensor) -> (Tensor, LossParts) {
        let teacher = self.teacher_logits(images);
        let student = self.student.forward_t(images, true);
        let parts = self.loss.loss(&student, &teacher, labels);
        (student, parts)
    }

    /// The loss for student logits against given (e.g. cached) teacher logits.
    pub fn loss_with(&self, student: &Tensor, teacher: &Tensor, labels: &Tensor) -> LossParts {
        self.loss.loss(student, teacher, labels)
    }

    /// The teacher.
    pub fn teacher(&self) -> &Model {
        &self.teacher
    }

    /// The student (its `var_store()` is what an optimizer trains).
    pub fn student(&self) -> &Model {
        &self.student
    }

    /// The loss.
    pub fn loss(&self) -> &dyn DistillLoss {
        self.loss.as_ref()
    }

    /// Gives back the student (e.g. to save it).
    pub fn into_student(self) -> Model {
        self.student
    }
}
