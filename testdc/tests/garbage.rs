//! Hostile input never takes testdc down: random bytes, truncated frames, bad msg_keys,
//! malformed containers and unknown constructors are closed or answered with rpc_error, and a
//! real client keeps working afterwards. A seeded loop makes failures reproducible.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{bounded, client, log_in, start};
use grammers_tl_types::{Identifiable, Serializable};
use rand::{Rng, SeedableRng};
use tgfleet_testdc::mtp;
use tgfleet_testdc::probe::{Answer, Probe};
use tgfleet_testdc::{new_auth_key, UserSpec};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

/// Sends bytes and waits (bounded) for the server to close or go quiet.
async fn feed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let Ok(mut p) = Probe::connect(addr, [0; 256]).await else {
        return;
    };
    let _ = p.send_raw(bytes).await;
    // Half-frames are legitimately waited on; the timeout stands in for a client giving up.
    let _ = tokio::time::timeout(Duration::from_millis(50), p.read_until_closed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_panics_and_real_clients_keep_working() {
    count_panics();
    let dc = start().await;
    let addr = dc.dc_addr(2);
    let key = new_auth_key();
    dc.register_auth_key(key);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e57dc);

    // 1. Random bytes, including random "lengths" at the front.
    for _ in 0..200 {
        let len = rng.gen_range(0..2048);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        feed(addr, &bytes).await;
    }

    // 2. Valid frames carrying random payloads, then truncated copies of them.
    for _ in 0..100 {
        let len = rng.gen_range(0..256) * 4;
        let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let mut frame = Vec::new();
        mtp::pack_frame(&mut frame, 0, &payload);
        feed(addr, &frame).await;
        let cut = rng.gen_range(0..frame.len());
        feed(addr, &frame[..cut]).await;
    }

    // 3. Properly encrypted frames with a flipped ciphertext bit (wrong msg_key).
    for _ in 0..50 {
        let mut plain = mtp::build_plain(0, 1, 4, 1, &[0; 16]);
        plain.resize(plain.len() + 32, 0);
        let mut enc = mtp::encrypt(
            &mtp::AuthKey::new(key),
            plain,
            mtp::Direction::ClientToServer,
        );
        let i = rng.gen_range(24..enc.len());
        enc[i] ^= 1 << rng.gen_range(0..8);
        let mut frame = Vec::new();
        mtp::pack_frame(&mut frame, 0, &enc);
        feed(addr, &frame).await;
    }

    // 4. Well-encrypted messages whose bodies are nonsense.
    let mut probe = Probe::connect(addr, key).await.unwrap();
    for _ in 0..200 {
        let len = rng.gen_range(1..64) * 4;
        let mut body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Sometimes a known method with garbage arguments.
        if rng.gen_bool(0.3) {
            body[..4].copy_from_slice(
                &grammers_tl_types::functions::messages::SendMessage::CONSTRUCTOR_ID.to_le_bytes(),
            );
        }
        match bounded(probe.invoke(&body)).await {
            Ok(Answer::Error { code, .. }) => assert!(code == 400 || code == 401),
            Ok(Answer::Result(_)) => {}
            // Malformed service messages (containers, gzip) close the connection.
            Err(_) => probe = Probe::connect(addr, key).await.unwrap(),
        }
    }

    // 5. Containers that lie about their contents.
    let mut container = 0x73f1f8dcu32.to_le_bytes().to_vec();
    container.extend_from_slice(&1000i32.to_le_bytes());
    container.extend_from_slice(&[0; 16]);
    let mut p = Probe::connect(addr, key).await.unwrap();
    p.send_body(&container).await.unwrap();
    assert!(bounded(p.recv()).await.is_err(), "a lying container closes");

    // 6. An unknown key gets transport error -404.
    let mut stranger = Probe::connect(addr, new_auth_key()).await.unwrap();
    let err =
        bounded(stranger.invoke(&grammers_tl_types::functions::help::GetNearestDc {}.to_bytes()))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("-404"), "{err}");

    // The DC still serves a real client, and every bad connection was cleaned up.
    dc.add_user(UserSpec::new("+15550005001", "Survivor"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550005001").await;
    bounded(c.client.get_me()).await.unwrap();
    drop(probe);
    drop(p);
    drop(stranger);
    bounded(async {
        while dc.connection_count() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "testdc panicked");
}
