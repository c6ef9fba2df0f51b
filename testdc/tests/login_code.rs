//! Login by phone code with the real grammers client.

mod common;

use common::{bounded, client, start, start_with, API_HASH, API_ID};
use grammers_client::tl;
use grammers_client::{InvocationError, SignInError};
use tgfleet_testdc::{TestDcConfig, UserSpec};

fn send_code(phone: &str) -> tl::functions::auth::SendCode {
    tl::functions::auth::SendCode {
        phone_number: phone.into(),
        api_id: API_ID,
        api_hash: API_HASH.into(),
        settings: tl::types::CodeSettings {
            allow_flashcall: false,
            current_number: false,
            allow_app_hash: false,
            allow_missed_call: false,
            allow_firebase: false,
            unknown_number: false,
            logout_tokens: None,
            token: None,
            app_sandbox: None,
        }
        .into(),
    }
}

fn sign_in(phone: &str, hash: &str, code: &str) -> tl::functions::auth::SignIn {
    tl::functions::auth::SignIn {
        phone_number: phone.into(),
        phone_code_hash: hash.into(),
        phone_code: Some(code.into()),
        email_verification: None,
    }
}

fn rpc_name(e: &InvocationError) -> String {
    match e {
        InvocationError::Rpc(r) => r.name.clone(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn raw_send_code_and_sign_in_log_the_key_in() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+1 555 000 1001", "Alice").username("alice"));
    let c = client(&dc, 2).await;

    assert!(!bounded(c.client.is_authorized()).await.unwrap());

    let tl::enums::auth::SentCode::Code(sent) =
        bounded(c.client.invoke(&send_code("+15550001001")))
            .await
            .unwrap()
    else {
        panic!("expected a sent code");
    };
    let code = dc.last_code("15550001001").expect("the code was logged");
    let auth = bounded(
        c.client
            .invoke(&sign_in("+15550001001", &sent.phone_code_hash, &code)),
    )
    .await
    .unwrap();
    let tl::enums::auth::Authorization::Authorization(auth) = auth else {
        panic!("expected an authorization");
    };
    let tl::enums::User::User(me) = auth.user else {
        panic!("expected a user");
    };
    assert!(me.is_self);
    assert_eq!(me.first_name.as_deref(), Some("Alice"));
    assert_eq!(me.username.as_deref(), Some("alice"));

    assert!(bounded(c.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn high_level_request_login_code_and_sign_in() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550001002", "Bob"));
    let c = client(&dc, 2).await;

    let token = bounded(c.client.request_login_code("+15550001002", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550001002").unwrap();
    let user = bounded(c.client.sign_in(&token, &code)).await.unwrap();
    assert_eq!(user.first_name(), Some("Bob"));

    let me = bounded(c.client.get_me()).await.unwrap();
    assert_eq!(me.id(), user.id());
    assert_eq!(me.phone(), Some("15550001002"));
}

#[tokio::test]
async fn wrong_code_is_invalid_and_an_old_code_is_expired() {
    let dc = start_with(TestDcConfig {
        fixed_code: Some("24680".into()),
        ..Default::default()
    })
    .await;
    dc.add_user(UserSpec::new("+15550001003", "Carol"));
    let c = client(&dc, 2).await;

    let tl::enums::auth::SentCode::Code(sent) =
        bounded(c.client.invoke(&send_code("+15550001003")))
            .await
            .unwrap()
    else {
        panic!("expected a sent code");
    };
    assert_eq!(dc.last_code("+15550001003").as_deref(), Some("24680"));

    let e = bounded(
        c.client
            .invoke(&sign_in("+15550001003", &sent.phone_code_hash, "11111")),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_name(&e), "PHONE_CODE_INVALID");

    // The high-level API folds every PHONE_CODE_* into InvalidCode.
    let token = bounded(c.client.request_login_code("+15550001003", API_HASH))
        .await
        .unwrap();
    assert!(matches!(
        bounded(c.client.sign_in(&token, "99999")).await,
        Err(SignInError::InvalidCode)
    ));

    // A hash that a newer send-code replaced no longer works.
    let e = bounded(
        c.client
            .invoke(&sign_in("+15550001003", &sent.phone_code_hash, "24680")),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_name(&e), "PHONE_CODE_EXPIRED");
}

#[tokio::test]
async fn code_past_its_lifetime_is_expired() {
    let dc = start_with(TestDcConfig {
        code_lifetime: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    dc.add_user(UserSpec::new("+15550001004", "Dave"));
    let c = client(&dc, 2).await;
    let tl::enums::auth::SentCode::Code(sent) =
        bounded(c.client.invoke(&send_code("+15550001004")))
            .await
            .unwrap()
    else {
        panic!("expected a sent code");
    };
    let code = dc.last_code("+15550001004").unwrap();
    let e = bounded(
        c.client
            .invoke(&sign_in("+15550001004", &sent.phone_code_hash, &code)),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_name(&e), "PHONE_CODE_EXPIRED");
}

#[tokio::test]
async fn code_hash_is_bound_to_the_auth_key_that_asked() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550001005", "Erin"));
    let asking = client(&dc, 2).await;
    let other = client(&dc, 2).await;
    let tl::enums::auth::SentCode::Code(sent) =
        bounded(asking.client.invoke(&send_code("+15550001005")))
            .await
            .unwrap()
    else {
        panic!("expected a sent code");
    };
    let code = dc.last_code("+15550001005").unwrap();
    let e = bounded(
        other
            .client
            .invoke(&sign_in("+15550001005", &sent.phone_code_hash, &code)),
    )
    .await
    .unwrap_err();
    assert_eq!(rpc_name(&e), "PHONE_CODE_EXPIRED");
    // The right key still can.
    bounded(
        asking
            .client
            .invoke(&sign_in("+15550001005", &sent.phone_code_hash, &code)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unregistered_number_needs_sign_up() {
    let dc = start().await;
    let c = client(&dc, 2).await;
    let token = bounded(c.client.request_login_code("+15550001006", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550001006").unwrap();
    assert!(matches!(
        bounded(c.client.sign_in(&token, &code)).await,
        Err(SignInError::SignUpRequired)
    ));

    // Raw flow: sendCode → signIn (sign-up required) → signUp.
    let tl::enums::auth::SentCode::Code(sent) =
        bounded(c.client.invoke(&send_code("+15550001006")))
            .await
            .unwrap()
    else {
        panic!("expected a sent code");
    };
    let code = dc.last_code("+15550001006").unwrap();
    let r = bounded(
        c.client
            .invoke(&sign_in("+15550001006", &sent.phone_code_hash, &code)),
    )
    .await
    .unwrap();
    assert!(matches!(
        r,
        tl::enums::auth::Authorization::SignUpRequired(_)
    ));
    let r = bounded(c.client.invoke(&tl::functions::auth::SignUp {
        no_joined_notifications: false,
        phone_number: "+15550001006".into(),
        phone_code_hash: sent.phone_code_hash,
        first_name: "Frank".into(),
        last_name: String::new(),
    }))
    .await
    .unwrap();
    assert!(matches!(
        r,
        tl::enums::auth::Authorization::Authorization(_)
    ));
    assert!(bounded(c.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn sandbox_directory_registers_unknown_phones() {
    let dc = start_with(TestDcConfig {
        sandbox_directory: true,
        ..Default::default()
    })
    .await;
    let c = client(&dc, 2).await;
    let token = bounded(c.client.request_login_code("+15550001007", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550001007").unwrap();
    let user = bounded(c.client.sign_in(&token, &code)).await.unwrap();
    assert_eq!(user.first_name(), Some("Sandbox"));
}

#[tokio::test]
async fn log_out_unauthorizes_the_key() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550001008", "Gina"));
    let c = client(&dc, 2).await;
    let token = bounded(c.client.request_login_code("+15550001008", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550001008").unwrap();
    bounded(c.client.sign_in(&token, &code)).await.unwrap();
    bounded(c.client.sign_out()).await.unwrap();
    assert!(!bounded(c.client.is_authorized()).await.unwrap());
}
