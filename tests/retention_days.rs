//! Retention over days, on a manual clock: a streak of simulated days wraps after day
//! seven and restarts after a missed day, and the day boundary decides which day a
//! claim belongs to. The shared world and its checks are in `retention_world.rs`.

use integration_tests::retention_world::{World, database};
use integration_tests::runtime;
use retention::chrono::{Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use retention::rules::tiers;
use retention::{DayBoundary, REWARD_TIERS, Retention, RetentionError};

#[test]
fn a_streak_over_simulated_days_wraps_after_day_seven_and_restarts_after_a_missed_day() {
    let (db, budget) = database("ret_streak");
    runtime().block_on(async {
        let w = World::new(&db, &budget).await;
        let player = w.player("loyal").await;
        let r = &w.retention;
        let start = r.today();
        let mut expected_coins = 0u64;

        // Days 1..=8 claimed in a row: streak 1..=8; tiers 1..=7, then tier 1 again on
        // streak day 8 (the cycle wraps, the streak keeps counting).
        for n in 1..=8u32 {
            let day = r.today();
            let before = r.reward_status(player, day).await.unwrap();
            assert!(!before.claimed);
            assert_eq!(before.streak, n - 1, "day {n}: yesterday's streak is alive");
            assert_eq!(before.reward_streak, n);
            assert_eq!(before.reward.day_number, tiers::tier_day(n));

            let claim = r.claim_daily_reward(player, day).await.unwrap();
            assert_eq!(claim.streak, n, "day {n}");
            let tier = if n <= 7 { n as u8 } else { 1 };
            assert_eq!(claim.tier, REWARD_TIERS[usize::from(tier - 1)], "day {n}");
            expected_coins += u64::from(claim.tier.coins);

            assert!(matches!(
                r.claim_daily_reward(player, day).await,
                Err(RetentionError::AlreadyClaimed { .. })
            ));
            let after = r.reward_status(player, day).await.unwrap();
            assert!(after.claimed);
            assert_eq!((after.streak, after.reward), (n, claim.tier));

            w.clock.advance(ChronoDuration::days(1));
        }

        // Day 9 passes without a claim. During it, the streak is still alive (8), and a
        // claim would have been streak day 9, tier 2.
        let missed = r.today();
        let during = r.reward_status(player, missed).await.unwrap();
        assert_eq!(
            (during.claimed, during.streak, during.reward_streak),
            (false, 8, 9)
        );
        assert_eq!(during.reward, REWARD_TIERS[1]);
        w.clock.advance(ChronoDuration::days(1));

        // Day 10: the streak is broken; it restarts at 1 with tier 1.
        let day = r.today();
        let status = r.reward_status(player, day).await.unwrap();
        assert_eq!(
            (status.claimed, status.streak, status.reward_streak),
            (false, 0, 1)
        );
        let claim = r.claim_daily_reward(player, day).await.unwrap();
        assert_eq!((claim.streak, claim.tier), (1, REWARD_TIERS[0]));
        expected_coins += u64::from(claim.tier.coins);
        w.clock.advance(ChronoDuration::days(1));
        let claim = r.claim_daily_reward(player, r.today()).await.unwrap();
        assert_eq!((claim.streak, claim.tier), (2, REWARD_TIERS[1]));
        expected_coins += u64::from(claim.tier.coins);

        // Claims go forward only: a past day already claimed is AlreadyClaimed, the
        // missed day is refused as invalid; neither writes anything.
        assert!(matches!(
            r.claim_daily_reward(player, start).await,
            Err(RetentionError::AlreadyClaimed { .. })
        ));
        assert!(matches!(
            r.claim_daily_reward(player, missed).await,
            Err(RetentionError::InvalidInput { .. })
        ));
        assert_eq!(
            w.count(
                "SELECT COUNT(*) FROM daily_reward_claims WHERE player_id = ?",
                player
            )
            .await,
            10
        );
        assert_eq!(r.balance(player).await.unwrap().coins, expected_coins);
        w.assert_healthy().await;
    });
}

#[test]
fn the_day_boundary_decides_which_day_a_claim_belongs_to() {
    let (db, budget) = database("ret_boundary");
    runtime().block_on(async {
        // Arrange: days reset at 04:00 UTC+02:00 (02:00 UTC).
        let w = World::new(&db, &budget).await;
        let player = w.player("night_owl").await;
        let r = Retention::builder(w.pool.clone())
            .clock(w.clock.clone())
            .day_boundary(DayBoundary::new(4, 120).unwrap())
            .build()
            .unwrap();
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 1, 22, 0, 0).unwrap());
        let first = r.today();
        assert_eq!(first, NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());

        // Act + Assert: 01:59 UTC the next calendar day is still the same game day.
        r.claim_daily_reward(player, r.today()).await.unwrap();
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 2, 1, 59, 0).unwrap());
        assert_eq!(r.today(), first);
        assert!(matches!(
            r.claim_daily_reward(player, r.today()).await,
            Err(RetentionError::AlreadyClaimed { .. })
        ));
        // 02:00 UTC is the next game day, and it continues the streak.
        w.clock
            .set(Utc.with_ymd_and_hms(2025, 3, 2, 2, 0, 0).unwrap());
        let claim = r.claim_daily_reward(player, r.today()).await.unwrap();
        assert_eq!((claim.day, claim.streak), (first.succ_opt().unwrap(), 2));
        w.assert_healthy().await;
    });
}
