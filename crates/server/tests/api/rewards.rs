//! The daily reward (async, retention): claimed once a day.

use crate::common::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_reward_can_be_claimed_once_a_day() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("loyal").await;
    let status_path = format!("/api/players/{id}/rewards");
    let claim_path = format!("/api/players/{id}/rewards/claim");

    // Act
    let before = app.client.get(&status_path, Some(&token)).await;
    let claim = app.client.post_empty(&claim_path, Some(&token)).await;
    let again = app.client.post_empty(&claim_path, Some(&token)).await;
    let after = app.client.get(&status_path, Some(&token)).await;

    // Assert
    assert_eq!(before.status, 200, "{}", before.text());
    assert_eq!(before.json()["claimed"], false);
    assert_eq!(claim.status, 200, "{}", claim.text());
    assert_eq!(claim.json()["streak"], 1);
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "already_claimed")
    );
    assert_eq!(after.json()["claimed"], true);
    app.stop().await;
}
