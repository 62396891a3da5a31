//! `GET /ws`: gameplay events in, quest progress and quest-completed pushes out;
//! malformed messages get an error message and the socket stays open.

mod common;

use std::time::Duration;

use common::{TestApp, spawn_app};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(
    app: &TestApp,
    token: Option<&str>,
    query_token: Option<&str>,
) -> Result<Socket, WsError> {
    let url = match query_token {
        Some(t) => format!("ws://{}/ws?token={t}", app.api_addr),
        None => format!("ws://{}/ws", app.api_addr),
    };
    let mut request = url.into_client_request()?;
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("no socket error");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("JSON message");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(text.into())).await.expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_answered_with_progress_and_a_finished_quest_is_pushed() {
    // Arrange
    let app = spawn_app().await;
    let (id, token) = app.new_player("ws").await;
    let quests = app
        .client
        .get(&format!("/api/players/{id}/quests"), Some(&token))
        .await
        .json();
    let quest = quests["quests"][0].clone();
    let target = quest["target"].as_u64().unwrap();
    let mut socket = connect(&app, Some(&token), None).await.expect("connect");

    // Act: one step short of the target, then the last step.
    let mut replies = Vec::new();
    if target > 1 {
        let event = json!({ "type": "event", "kind": quest["event_kind"], "amount": target - 1 });
        send(&mut socket, &event.to_string()).await;
        replies.push(next_json(&mut socket).await);
    }
    let event = json!({ "type": "event", "kind": quest["event_kind"], "amount": 1 });
    send(&mut socket, &event.to_string()).await;
    let progress = next_json(&mut socket).await;
    let completed = next_json(&mut socket).await;

    // Assert
    for early in &replies {
        assert_eq!(early["type"], "progress", "{early}");
    }
    assert_eq!(progress["type"], "progress", "{progress}");
    let mine = progress["quests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == quest["id"])
        .expect("the quest is in the progress")
        .clone();
    assert_eq!(mine["progress"], target);
    assert_eq!(completed["type"], "quest_completed", "{completed}");
    assert_eq!(completed["quest_id"], quest["id"]);
    assert_eq!(completed["reward_coins"], quest["reward_coins"]);
    socket.close(None).await.ok();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_forty_concurrent_events_over_ten_sockets_one_push_says_the_quest_completed() {
    // Arrange: a quest that five events of its kind finish, and ten open sockets.
    let app = spawn_app().await;
    let (id, token) = app.new_player("ws-racer").await;
    let quests = app
        .client
        .get(&format!("/api/players/{id}/quests"), Some(&token))
        .await
        .json();
    let quest_id = quests["quests"][0]["id"].as_u64().unwrap();
    let mut conn = app.async_pool.acquire().await.unwrap();
    conn.execute(
        "UPDATE player_daily_quests SET event_kind = 'race_tick', target = 5 WHERE id = ?",
        db_async::args![quest_id],
    )
    .await
    .unwrap();
    drop(conn);
    let mut sockets = Vec::new();
    for _ in 0..10 {
        sockets.push(connect(&app, Some(&token), None).await.expect("connect"));
    }

    // Act: each socket sends four events, then asks for the quests; a socket's replies
    // come in order, so all pushes of its events arrive before its fifth `progress`.
    let mut clients = tokio::task::JoinSet::new();
    for mut socket in sockets {
        clients.spawn(async move {
            let event = json!({ "type": "event", "kind": "race_tick", "amount": 1 }).to_string();
            for _ in 0..4 {
                send(&mut socket, &event).await;
            }
            send(&mut socket, r#"{"type":"quests"}"#).await;
            let mut pushes = Vec::new();
            let mut progress = 0;
            while progress < 5 {
                let reply = next_json(&mut socket).await;
                match reply["type"].as_str() {
                    Some("progress") => progress += 1,
                    Some("quest_completed") => pushes.push(reply["quest_id"].as_u64().unwrap()),
                    _ => panic!("unexpected reply {reply}"),
                }
            }
            socket.close(None).await.ok();
            pushes
        });
    }
    let pushes: Vec<u64> = clients.join_all().await.into_iter().flatten().collect();

    // Assert
    assert_eq!(
        pushes.iter().filter(|q| **q == quest_id).count(),
        1,
        "exactly one push says the quest completed: {pushes:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_gets_an_error_and_the_socket_stays_open() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_player("ws").await;
    let mut socket = connect(&app, None, Some(&token))
        .await
        .expect("connect with ?token=");

    for bad in [
        "not json",
        "{\"type\":\"event\",\"kind\":\"game_won\"}",
        "{\"type\":\"event\",\"kind\":\"game_won\",\"amount\":\"many\"}",
        "{\"type\":\"dance\"}",
        "{\"type\":\"event\",\"kind\":\"game_won\",\"amount\":0}",
        "[]",
    ] {
        // Act
        send(&mut socket, bad).await;
        let reply = next_json(&mut socket).await;

        // Assert
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    socket
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "error");
    send(
        &mut socket,
        r#"{"type":"event","kind":"game_played","amount":1}"#,
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await["type"],
        "progress",
        "still open after the errors"
    );
    socket.close(None).await.ok();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_refuses_a_missing_or_bad_token_with_401() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_player("ws").await;
    let forged = format!("{}0", &token[..token.len() - 1]);

    for (header, query) in [
        (None, None),
        (Some(forged.as_str()), None),
        (None, Some(forged.as_str())),
    ] {
        // Act
        let err = connect(&app, header, query).await.expect_err("refused");

        // Assert
        match err {
            WsError::Http(response) => assert_eq!(response.status(), 401),
            other => panic!("expected an HTTP 401, got {other:?}"),
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_open_websockets_with_going_away() {
    // Arrange
    let app = spawn_app().await;
    let (_, token) = app.new_player("ws").await;
    let mut socket = connect(&app, Some(&token), None).await.expect("connect");
    send(&mut socket, r#"{"type":"quests"}"#).await;
    assert_eq!(next_json(&mut socket).await["type"], "progress");
    let budget = app.budget.clone();

    // Act
    let stopping = tokio::spawn(app.stop());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("a close frame within 10 s");
    stopping.await.unwrap();

    // Assert
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    assert_eq!(budget.in_use(), 0);
}
