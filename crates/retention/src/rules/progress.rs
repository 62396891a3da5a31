//! Quest progress: what counts as an advance, and the cap.

/// A progress amount as the service accepts it: strictly positive. Amounts above
/// `u32::MAX` are clamped (no target is larger, so the result is the same).
///
/// Returns `None` for zero and negative amounts.
pub fn validate_amount(amount: i64) -> Option<u32> {
    if amount <= 0 {
        return None;
    }
    Some(u32::try_from(amount).unwrap_or(u32::MAX))
}

/// Progress after adding `amount`: never above `target`.
///
/// The service evaluates exactly this in SQL (`LEAST(target, progress + ?)`) inside
/// one `UPDATE`, so that concurrent events serialise on the row lock instead of
/// racing in a read-modify-write.
pub fn advance(progress: u32, amount: u32, target: u32) -> u32 {
    progress.saturating_add(amount).min(target)
}

/// A quest whose progress reached its target may be completed (its reward claimed).
pub fn is_finished(progress: u32, target: u32) -> bool {
    progress >= target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_negative_amounts_are_refused() {
        assert_eq!(validate_amount(0), None);
        assert_eq!(validate_amount(-1), None);
        assert_eq!(validate_amount(i64::MIN), None);
    }

    #[test]
    fn positive_amounts_are_accepted_and_huge_ones_clamped() {
        assert_eq!(validate_amount(1), Some(1));
        assert_eq!(validate_amount(i64::from(u32::MAX)), Some(u32::MAX));
        assert_eq!(validate_amount(i64::MAX), Some(u32::MAX));
    }

    #[test]
    fn progress_is_capped_at_the_target() {
        assert_eq!(advance(0, 1, 50), 1);
        assert_eq!(advance(49, 1, 50), 50);
        assert_eq!(advance(50, 1, 50), 50);
        assert_eq!(advance(10, 1000, 50), 50);
        assert_eq!(advance(u32::MAX - 1, u32::MAX, u32::MAX), u32::MAX);
    }

    #[test]
    fn two_hundred_single_steps_reach_min_of_target_and_two_hundred() {
        for (target, expected) in [(50, 50), (500, 200)] {
            let p = (0..200).fold(0, |p, _| advance(p, 1, target));
            assert_eq!(p, expected);
        }
    }

    #[test]
    fn finished_means_target_reached() {
        assert!(!is_finished(49, 50));
        assert!(is_finished(50, 50));
    }
}
