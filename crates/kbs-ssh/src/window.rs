//! Bounded concurrency as a sliding window.
//!
//! At most `limit` futures run at once and a new one starts as soon as any finishes, so one slow host
//! delays only itself, never a whole batch. Results come out in completion order.

use std::future::Future;

use futures_util::stream::{self, Stream, StreamExt};

/// Run `f(item)` for every item with at most `limit` in flight, yielding each result as it finishes.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures_util::StreamExt;
/// let squares: Vec<u32> = kbs_ssh::run_windowed(1..=4u32, 2, |n| async move { n * n }).collect().await;
/// assert_eq!(squares.len(), 4);
/// # });
/// ```
pub fn run_windowed<I, F, Fut>(items: I, limit: usize, f: F) -> impl Stream<Item = Fut::Output>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future,
{
    // A limit of 0 would never start anything; treat it as 1.
    stream::iter(items).map(f).buffer_unordered(limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn slow_item_does_not_hold_the_others() {
        let start = Instant::now();
        let mut order = Vec::new();
        let mut s = std::pin::pin!(run_windowed(0..6u64, 2, |i| async move {
            let d = if i == 0 { 300 } else { 20 };
            tokio::time::sleep(Duration::from_millis(d)).await;
            (i, start.elapsed())
        }));
        while let Some((i, at)) = s.next().await {
            order.push(i);
            if i == 5 {
                // Five fast items through one free slot: ~100 ms, far less than the slow one's 300 ms.
                assert!(at < Duration::from_millis(250), "item 5 finished at {at:?}");
            }
        }
        assert_eq!(order.last(), Some(&0));
        assert_eq!(order.len(), 6);
    }
}
