//! Overlapping batch assembly with training: a producer thread walks an iterator (gathering,
//! augmenting and normalizing batches) and hands its items to the consumer through a bounded
//! queue, like PyTorch's `DataLoader` with a worker and `prefetch_factor`. While the model
//! computes on batch `k`, batches `k + 1 ..= k + depth` are being prepared; the queue bound
//! keeps at most `depth` finished batches (plus the one being built) in memory.
//!
//! The producer is a scoped thread, so it may borrow the dataset; if the consumer stops early
//! (an error, early stopping), dropping the queue's receiving end ends the producer at its next
//! hand-over.

use std::sync::mpsc::{self, Receiver};

/// Items received from the producer thread, in order.
#[derive(Debug)]
pub struct Prefetched<T> {
    queue: Receiver<T>,
}

impl<T> Iterator for Prefetched<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.recv().ok()
    }
}

/// Runs `consume` on the items of `items`, produced on a background thread at most `depth`
/// items ahead (`depth` 0 hands each item over as the consumer takes it). A panic of the
/// producer resumes in the caller once `consume` returns.
pub fn prefetch<I, R>(items: I, depth: usize, consume: impl FnOnce(Prefetched<I::Item>) -> R) -> R
where
    I: Iterator + Send,
    I::Item: Send,
{
    std::thread::scope(|scope| {
        let (sender, queue) = mpsc::sync_channel(depth);
        let producer = scope.spawn(move || {
            // Batch assembly is small work: on this thread alone, so that libtorch's thread
            // pool keeps its workers spinning for the training thread (kd_sys::threads).
            kd_sys::single_threaded_ops();
            for item in items {
                if sender.send(item).is_err() {
                    break; // the consumer is gone
                }
            }
        });
        let result = consume(Prefetched { queue });
        if let Err(panic) = producer.join() {
            // The producer's own message, not the scope's generic one.
            std::panic::resume_unwind(panic);
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn items_arrive_in_order_and_all_of_them() {
        let got: Vec<u32> = prefetch(0..100u32, 3, |it| it.collect());
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    /// The producer builds item `k + 1` while the consumer still holds item `k`: the consumer
    /// waits, inside its work on item 0, for the producer to report item 1 built. Loading and
    /// consuming in turn would never get there (the wait would time out).
    #[test]
    fn the_next_item_is_built_while_the_current_one_is_consumed() {
        let (built_tx, built_rx) = mpsc::channel();
        let producer = (0..5).inspect(move |&k| {
            std::thread::sleep(Duration::from_millis(5)); // a slow loader
            built_tx.send(k).unwrap();
        });
        prefetch(producer, 2, |mut items| {
            assert_eq!(items.next(), Some(0));
            assert_eq!(built_rx.recv_timeout(Duration::from_secs(30)), Ok(0));
            assert_eq!(
                built_rx.recv_timeout(Duration::from_secs(30)),
                Ok(1),
                "item 1 was not built while item 0 was being consumed"
            );
            assert_eq!(items.collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        });
    }

    #[test]
    fn the_producer_stays_at_most_depth_plus_one_items_ahead() {
        let produced = AtomicUsize::new(0);
        let lead = Mutex::new(Vec::new());
        let producer = (0..50).inspect(|_| {
            produced.fetch_add(1, Ordering::SeqCst);
        });
        prefetch(producer, 3, |items| {
            for (consumed, _) in items.enumerate() {
                std::thread::sleep(Duration::from_millis(1));
                lead.lock()
                    .unwrap()
                    .push(produced.load(Ordering::SeqCst) - consumed);
            }
        });
        let lead = lead.into_inner().unwrap();
        assert_eq!(lead.len(), 50);
        // Taking item `c` leaves up to 3 queued items and one being built: c + 1 + 3 + 1.
        assert!(lead.iter().all(|&l| l <= 5), "{lead:?}");
        assert!(
            lead.iter().any(|&l| l >= 2),
            "no prefetching happened: {lead:?}"
        );
    }

    #[test]
    fn a_producer_panic_reaches_the_caller_with_its_message() {
        let caught = std::panic::catch_unwind(|| {
            prefetch(
                (0..10).inspect(|&k| assert!(k < 3, "batch {k} is corrupt")),
                2,
                |items| items.count(),
            )
        })
        .unwrap_err();
        let message = caught.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("batch 3 is corrupt"), "{message:?}");
    }

    #[test]
    fn a_consumer_that_stops_early_ends_the_producer() {
        let produced = AtomicUsize::new(0);
        let first: Vec<usize> = prefetch(
            (0..1_000_000).inspect(|_| {
                produced.fetch_add(1, Ordering::SeqCst);
            }),
            4,
            |items| items.take(3).collect(),
        );
        assert_eq!(first, vec![0, 1, 2]);
        assert!(produced.load(Ordering::SeqCst) <= 3 + 4 + 2);
    }
}
