//! Which ranged GETs fetch a set of chunks from one pack: neighbours are
//! read together when the gap between them is small, so a download of
//! many small files costs a few requests, not one per file. Pure.

use std::ops::Range;

/// One ranged GET and the wanted ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub range: Range<u64>,
    /// Indexes into the wanted ranges, in offset order.
    pub parts: Vec<usize>,
}

impl Read {
    /// Where wanted range `r` lies in this read's bytes.
    pub fn slice_of(&self, r: &Range<u64>) -> Range<usize> {
        (r.start - self.range.start) as usize..(r.end - self.range.start) as usize
    }
}

/// The reads that fetch every range in `wanted` (any order, repeats
/// allowed): ranges at most `max_gap` bytes apart share a read as long
/// as it stays within `max_len` bytes (a range longer than that is read
/// alone). Reads come in offset order.
pub fn coalesce(wanted: &[Range<u64>], max_gap: u64, max_len: u64) -> Vec<Read> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| (wanted[i].start, wanted[i].end));
    let mut reads: Vec<Read> = Vec::new();
    for i in order {
        let r = &wanted[i];
        if let Some(last) = reads.last_mut() {
            let end = last.range.end.max(r.end);
            if r.start <= last.range.end.saturating_add(max_gap)
                && end - last.range.start <= max_len
            {
                last.range.end = end;
                last.parts.push(i);
                continue;
            }
        }
        reads.push(Read {
            range: r.clone(),
            parts: vec![i],
        });
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_share_a_read_and_distant_ones_do_not() {
        let wanted = [100..200, 0..100, 250..300, 10_000..10_050];
        let reads = coalesce(&wanted, 64, 1 << 20);
        assert_eq!(
            reads,
            vec![
                Read {
                    range: 0..300,
                    parts: vec![1, 0, 2]
                },
                Read {
                    range: 10_000..10_050,
                    parts: vec![3]
                },
            ]
        );
        assert_eq!(reads[0].slice_of(&wanted[2]), 250..300);
    }

    #[test]
    fn a_read_stays_within_its_length_cap() {
        let wanted: Vec<_> = (0..10u64).map(|i| i * 100..i * 100 + 100).collect();
        let reads = coalesce(&wanted, 0, 350);
        let lens: Vec<_> = reads.iter().map(|r| r.range.end - r.range.start).collect();
        assert_eq!(lens, vec![300, 300, 300, 100]);
        // Every range is served exactly once.
        let mut served: Vec<usize> = reads.iter().flat_map(|r| r.parts.clone()).collect();
        served.sort();
        assert_eq!(served, (0..10).collect::<Vec<_>>());
        // One range longer than the cap is read alone, whole.
        assert_eq!(
            coalesce(&[0..1000, 1000..1010], 0, 500),
            vec![
                Read {
                    range: 0..1000,
                    parts: vec![0]
                },
                Read {
                    range: 1000..1010,
                    parts: vec![1]
                }
            ]
        );
    }

    #[test]
    fn a_range_wanted_twice_is_read_once() {
        let reads = coalesce(&[5..10, 5..10], 0, 100);
        assert_eq!(
            reads,
            vec![Read {
                range: 5..10,
                parts: vec![0, 1]
            }]
        );
        assert!(coalesce(&[], 0, 100).is_empty());
    }
}
