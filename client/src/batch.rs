//! Coalescing concurrent calls into batch calls: whoever finds a free
//! slot sends everything queued in one request, and the others wait for
//! their answer, so many small uploads in flight cost a few
//! `StartUploads` / `PutChunks` / `FinishUploads` round trips instead of
//! three calls each. Nothing waits on a timer: while a batch is on its
//! way the next one gathers (as Nagle's algorithm does), so batches grow
//! with the latency and the number of callers, and a lone call goes at
//! once. Runs on any executor (native and wasm).

use futures::channel::oneshot;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use tonic::Status;

/// How large one batch may be, and how many may be on their way at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Items in one batch.
    pub items: usize,
    /// Their weights (say, bytes) added up; a single heavier item still
    /// goes, alone.
    pub weight: usize,
    /// Batches on their way at once.
    pub in_flight: usize,
}

type Reply<R> = oneshot::Sender<Result<R, Status>>;

struct Waiting<Q, R> {
    item: Q,
    weight: usize,
    reply: Reply<R>,
}

struct State<Q, R> {
    queue: VecDeque<Waiting<Q, R>>,
    in_flight: usize,
}

/// Calls of one kind, coalesced. See the module's documentation.
pub struct Coalescer<Q, R> {
    state: Mutex<State<Q, R>>,
    limits: Limits,
}

impl<Q, R> std::fmt::Debug for Coalescer<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A slot taken by a sender; given back when it is dropped, even if the
/// sender's future is dropped half way.
struct Slot<'a, Q, R>(&'a Coalescer<Q, R>);

impl<Q, R> Drop for Slot<'_, Q, R> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap();
        s.in_flight -= 1;
        // Someone must send what is queued: wake the first waiter still
        // waiting (its answer channel closes), which then sends it. Those
        // that gave up go on the way: dropping theirs would wake no one.
        while let Some(w) = s.queue.pop_front() {
            if !w.reply.is_canceled() {
                break;
            }
        }
    }
}

impl<Q: Clone, R> Coalescer<Q, R> {
    pub fn new(limits: Limits) -> Self {
        Coalescer {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                in_flight: 0,
            }),
            limits,
        }
    }

    /// Answers `item` from a batch call `send` makes of it and whatever
    /// else is queued. `send` answers each item of the batch in order, or
    /// fails the whole batch with one status.
    pub async fn call<F, Fut>(&self, item: Q, weight: usize, send: F) -> Result<R, Status>
    where
        F: Fn(Vec<Q>) -> Fut,
        Fut: Future<Output = Result<Vec<Result<R, Status>>, Status>>,
    {
        loop {
            let (reply, mut answer) = oneshot::channel();
            let batch = {
                let mut s = self.state.lock().unwrap();
                s.queue.push_back(Waiting {
                    item: item.clone(),
                    weight,
                    reply,
                });
                self.take(&mut s)
            };
            if let Some(batch) = batch {
                let _slot = Slot(self);
                let (items, replies): (Vec<Q>, Vec<Reply<R>>) =
                    batch.into_iter().map(|w| (w.item, w.reply)).unzip();
                let n = replies.len();
                match send(items).await {
                    Ok(answers) if answers.len() == n => {
                        for (reply, a) in replies.into_iter().zip(answers) {
                            let _ = reply.send(a);
                        }
                    }
                    Ok(answers) => {
                        let wrong = Status::internal(format!(
                            "the server answered {} of a batch of {n}",
                            answers.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(wrong.clone()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
            match answer.try_recv() {
                Ok(Some(r)) => return r,
                // Queued behind a batch on its way; or this sender's own
                // batch was cut before this item.
                Ok(None) => {}
                // Woken to send: go round again.
                Err(oneshot::Canceled) => continue,
            }
            match answer.await {
                Ok(r) => return r,
                Err(oneshot::Canceled) => continue,
            }
        }
    }

    /// The queue's head, up to the limits, if a slot is free.
    fn take(&self, s: &mut State<Q, R>) -> Option<Vec<Waiting<Q, R>>> {
        // Items whose callers gave up are not sent.
        s.queue.retain(|w| !w.reply.is_canceled());
        if s.in_flight >= self.limits.in_flight || s.queue.is_empty() {
            return None;
        }
        let (mut n, mut weight) = (0, 0);
        for w in &s.queue {
            if n == self.limits.items || (n > 0 && weight + w.weight > self.limits.weight) {
                break;
            }
            n += 1;
            weight += w.weight;
        }
        s.in_flight += 1;
        Some(s.queue.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limits(items: usize, weight: usize, in_flight: usize) -> Limits {
        Limits {
            items,
            weight,
            in_flight,
        }
    }

    /// Every caller gets the answer to its own item, and many callers at
    /// once make few calls.
    #[tokio::test]
    async fn many_callers_share_few_calls_and_each_gets_its_own_answer() {
        let c = Coalescer::new(limits(100, usize::MAX, 1));
        let calls = AtomicUsize::new(0);
        let largest = AtomicUsize::new(0);
        let send = |items: Vec<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            largest.fetch_max(items.len(), Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                Ok(items.into_iter().map(|i| Ok(i * 2)).collect())
            }
        };
        let answers: Vec<u32> = futures::stream::iter(0..500u32)
            .map(|i| {
                let (c, send) = (&c, &send);
                async move { c.call(i, 1, send).await.unwrap() - i }
            })
            .buffered(200)
            .collect()
            .await;
        assert_eq!(answers, (0..500).collect::<Vec<_>>());
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls < 50, "{calls} calls for 500 items");
        assert!(
            largest.load(Ordering::SeqCst) <= 100,
            "a batch over the limit"
        );
    }

    #[tokio::test]
    async fn batches_keep_to_the_weight_but_a_heavy_item_goes_alone() {
        let c = Coalescer::new(limits(100, 10, 1));
        let batches = Mutex::new(Vec::new());
        let send = |items: Vec<usize>| {
            batches.lock().unwrap().push(items.clone());
            async move {
                tokio::task::yield_now().await;
                Ok(items.into_iter().map(Ok).collect())
            }
        };
        let weights = [1, 4, 4, 4, 30, 2, 9, 1];
        let got: Vec<usize> = futures::future::join_all(weights.iter().map(|&w| {
            let (c, send) = (&c, &send);
            async move { c.call(w, w, send).await.unwrap() }
        }))
        .await;
        assert_eq!(got, weights);
        for b in batches.lock().unwrap().iter() {
            let total: usize = b.iter().sum();
            assert!(total <= 10 || b.len() == 1, "batch {b:?} is too heavy");
        }
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_items_and_refusals_stay_per_item() {
        let c = Coalescer::new(limits(100, usize::MAX, 1));
        let send = |items: Vec<i32>| async move {
            tokio::task::yield_now().await;
            if items.contains(&0) {
                return Err(Status::unavailable("down"));
            }
            Ok(items
                .into_iter()
                .map(|i| {
                    if i < 0 {
                        Err(Status::failed_precondition("negative"))
                    } else {
                        Ok(i)
                    }
                })
                .collect())
        };
        let got = futures::future::join_all([1, -1, 2].map(|i| c.call(i, 1, send))).await;
        assert_eq!(got[0].as_ref().unwrap(), &1);
        assert_eq!(
            got[1].as_ref().unwrap_err().code(),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(got[2].as_ref().unwrap(), &2);
        let down = c.call(0, 1, send).await.unwrap_err();
        assert_eq!(down.code(), tonic::Code::Unavailable);
    }

    /// A sender dropped half way (its caller gave up) strands no one:
    /// the items it carried and those queued are sent by their own
    /// callers.
    #[tokio::test]
    async fn a_sender_dropped_on_its_way_strands_no_waiter() {
        let c = Coalescer::new(limits(100, usize::MAX, 1));
        let hang = AtomicUsize::new(1);
        let send = |items: Vec<u32>| {
            let stall = hang.fetch_sub(1, Ordering::SeqCst) == 1;
            async move {
                if stall {
                    futures::future::pending::<()>().await;
                }
                Ok(items.into_iter().map(Ok).collect())
            }
        };
        let mut first = Box::pin(c.call(7, 1, send));
        let mut others = Box::pin(futures::future::join_all(
            (0..5u32).map(|i| c.call(i, 1, send)),
        ));
        // The first call takes the slot and stalls; the others queue.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(others.as_mut()).is_pending());
        drop(first);
        // One poll: the first waiter, woken, sends for everyone.
        let futures::task::Poll::Ready(got) = futures::poll!(others.as_mut()) else {
            panic!("the waiters were stranded");
        };
        let got: Vec<u32> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    /// A caller that gives up while queued is not sent, and does not
    /// strand those queued behind it when the batch ahead ends.
    #[tokio::test]
    async fn a_waiter_that_gives_up_is_skipped_and_strands_no_one() {
        let c = Coalescer::new(limits(100, usize::MAX, 1));
        let (open, gate) = futures::channel::oneshot::channel::<()>();
        let gate = gate.shared();
        let sent = Mutex::new(Vec::new());
        let send = |items: Vec<u32>| {
            sent.lock().unwrap().push(items.clone());
            let gate = gate.clone();
            async move {
                let _ = gate.await;
                Ok(items.into_iter().map(Ok).collect())
            }
        };
        let mut first = Box::pin(c.call(7, 1, send));
        let mut quitter = Box::pin(c.call(8, 1, send));
        let mut behind = Box::pin(c.call(9, 1, send));
        // The first call takes the slot and waits at the gate; the other
        // two queue, the quitter at the head.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(quitter.as_mut()).is_pending());
        assert!(futures::poll!(behind.as_mut()).is_pending());
        drop(quitter);
        open.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 7);
        // The one behind the quitter is woken and sends for itself.
        let futures::task::Poll::Ready(got) = futures::poll!(behind.as_mut()) else {
            panic!("the waiter behind one that gave up was stranded");
        };
        assert_eq!(got.unwrap(), 9);
        assert_eq!(*sent.lock().unwrap(), vec![vec![7], vec![9]]);
    }
}
