//! Rendezvous (highest-random-weight) placement of chunks on nodes.
//!
//! Every node gets a score for a chunk, BLAKE3 of (node id, chunk id); the
//! chunk's home is the R highest-scoring nodes. Adding or removing a node
//! moves only the chunks whose top R change, about 1/N of them.

/// Node indices in preference order for `chunk_id` (highest score first).
pub fn rank(chunk_id: &str, node_ids: &[&str]) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> = node_ids
        .iter()
        .enumerate()
        .map(|(i, node)| (score(node, chunk_id), i))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, i)| i).collect()
}

fn score(node_id: &str, chunk_id: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(node_id.as_bytes());
    h.update(&[0]);
    h.update(chunk_id.as_bytes());
    let bytes = h.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| coffer_proto::chunking::chunk_id(&i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn rank_is_a_stable_permutation() {
        let nodes = ["a", "b", "c", "d"];
        for id in ids(50) {
            let r = rank(&id, &nodes);
            let mut sorted = r.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
            assert_eq!(r, rank(&id, &nodes));
        }
    }

    #[test]
    fn load_spreads_evenly() {
        let nodes = ["n1", "n2", "n3", "n4"];
        let mut first = [0usize; 4];
        for id in ids(4000) {
            first[rank(&id, &nodes)[0]] += 1;
        }
        for count in first {
            assert!((800..1200).contains(&count), "{first:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_few_homes() {
        let three = ["n1", "n2", "n3"];
        let four = ["n1", "n2", "n3", "n4"];
        let mut moved = 0;
        let all = ids(3000);
        for id in &all {
            let before: Vec<&str> = rank(id, &three)[..2].iter().map(|&i| three[i]).collect();
            let after: Vec<&str> = rank(id, &four)[..2].iter().map(|&i| four[i]).collect();
            // Relative order of the old nodes never changes.
            let old_order: Vec<&str> = rank(id, &four)
                .iter()
                .map(|&i| four[i])
                .filter(|n| *n != "n4")
                .collect();
            assert_eq!(
                old_order,
                rank(id, &three)
                    .iter()
                    .map(|&i| three[i])
                    .collect::<Vec<_>>()
            );
            if before != after {
                moved += 1;
            }
        }
        // With R=2 of 4, the new node is in a chunk's home half the time.
        assert!(moved < all.len() * 6 / 10, "{moved}");
    }
}
