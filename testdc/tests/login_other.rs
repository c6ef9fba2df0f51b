//! 2FA, bots, QR login and DC migration with the real client.

mod common;

use common::{bounded, client, rpc_error, start, start_with, API_HASH, API_ID};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::session::Session;
use grammers_client::tl;
use grammers_client::SignInError;
use tgfleet_testdc::{TestDcConfig, UserSpec};

#[tokio::test]
async fn two_factor_login_with_real_srp() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550004001", "Secure").password("correct horse"));
    let c = client(&dc, 2).await;
    let token = bounded(c.client.request_login_code("+15550004001", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550004001").unwrap();
    let Err(SignInError::PasswordRequired(pw)) = bounded(c.client.sign_in(&token, &code)).await
    else {
        panic!("a 2FA account must ask for its password");
    };
    // Until the password is checked the key is not logged in.
    let e = rpc_error(bounded(c.client.invoke(&tl::functions::updates::GetState {})).await);
    assert_eq!(e.code, 401);

    let Err(SignInError::InvalidPassword(pw)) = bounded(c.client.check_password(pw, "wrong")).await
    else {
        panic!("a wrong password must be PASSWORD_HASH_INVALID");
    };
    let user = bounded(c.client.check_password(pw, "correct horse"))
        .await
        .unwrap();
    assert_eq!(user.first_name(), Some("Secure"));
    assert!(bounded(c.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn sandbox_phones_ending_in_9_have_the_sandbox_password() {
    let dc = start_with(TestDcConfig {
        sandbox_directory: true,
        ..Default::default()
    })
    .await;
    let c = client(&dc, 2).await;
    let token = bounded(c.client.request_login_code("+15550004009", API_HASH))
        .await
        .unwrap();
    let code = dc.last_code("+15550004009").unwrap();
    let Err(SignInError::PasswordRequired(pw)) = bounded(c.client.sign_in(&token, &code)).await
    else {
        panic!("expected a password request");
    };
    bounded(c.client.check_password(pw, "sandbox-2fa"))
        .await
        .unwrap();
}

#[tokio::test]
async fn bot_login_and_invalid_token() {
    let dc = start().await;
    let id = dc.add_bot("123456:TESTTOKEN", "test_bot");
    let c = client(&dc, 2).await;
    let e = rpc_error(
        bounded(c.client.bot_sign_in("999:NOPE", API_HASH))
            .await
            .map(|_| ()),
    );
    assert_eq!(e.name, "ACCESS_TOKEN_INVALID");
    let bot = bounded(c.client.bot_sign_in("123456:TESTTOKEN", API_HASH))
        .await
        .unwrap();
    assert!(bot.is_bot());
    assert_eq!(bot.id().bare_id(), Some(id));
    assert_eq!(id, 123456);
}

#[tokio::test]
async fn bot_on_another_dc_migrates() {
    let dc = start().await;
    dc.add_bot_on("777:OTHERDC", "far_bot", 4);
    let c = client(&dc, 2).await;
    bounded(c.client.bot_sign_in("777:OTHERDC", API_HASH))
        .await
        .unwrap();
    assert_eq!(c.session.home_dc_id().unwrap(), 4);
}

#[tokio::test]
async fn phone_on_another_dc_gets_phone_migrate_and_the_client_follows() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550004002", "Traveller").dc(4));
    let c = client(&dc, 2).await;

    // The raw call shows the error the high-level API follows.
    let e = rpc_error(
        bounded(
            c.client.invoke(&tl::functions::auth::SendCode {
                phone_number: "+15550004002".into(),
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
            }),
        )
        .await,
    );
    assert_eq!(
        (e.code, e.name.as_str(), e.value),
        (303, "PHONE_MIGRATE", Some(4))
    );

    let token = bounded(c.client.request_login_code("+15550004002", API_HASH))
        .await
        .unwrap();
    assert_eq!(c.session.home_dc_id().unwrap(), 4);
    let code = dc.last_code("+15550004002").unwrap();
    let user = bounded(c.client.sign_in(&token, &code)).await.unwrap();
    assert_eq!(user.first_name(), Some("Traveller"));
}

fn export() -> tl::functions::auth::ExportLoginToken {
    tl::functions::auth::ExportLoginToken {
        api_id: API_ID,
        api_hash: API_HASH.into(),
        except_ids: Vec::new(),
    }
}

#[tokio::test]
async fn qr_login_scanned_by_the_handle() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550004003", "Scanner"));
    let mut c = client(&dc, 2).await;
    let tl::enums::auth::LoginToken::Token(t) = bounded(c.client.invoke(&export())).await.unwrap()
    else {
        panic!("expected a token");
    };
    dc.scan_qr(&t.token, "+15550004003").unwrap();

    // The exporting session is told, as Telegram does, with updateLoginToken.
    bounded(async {
        loop {
            match c.updates.recv().await {
                Some(UpdatesLike::Updates(tl::enums::Updates::UpdateShort(u)))
                    if matches!(u.update, tl::enums::Update::LoginToken) =>
                {
                    break
                }
                Some(_) => continue,
                None => panic!("updates ended"),
            }
        }
    })
    .await;

    let r = bounded(c.client.invoke(&export())).await.unwrap();
    let tl::enums::auth::LoginToken::Success(s) = r else {
        panic!("expected success, got {r:?}");
    };
    assert!(matches!(
        s.authorization,
        tl::enums::auth::Authorization::Authorization(_)
    ));
    assert!(bounded(c.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn qr_login_for_a_user_on_another_dc_migrates_and_imports() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550004004", "Remote").dc(4));
    let c = client(&dc, 2).await;
    let tl::enums::auth::LoginToken::Token(t) = bounded(c.client.invoke(&export())).await.unwrap()
    else {
        panic!("expected a token");
    };
    dc.scan_qr(&t.token, "+15550004004").unwrap();
    let r = bounded(c.client.invoke(&export())).await.unwrap();
    let tl::enums::auth::LoginToken::MigrateTo(m) = r else {
        panic!("expected loginTokenMigrateTo, got {r:?}");
    };
    assert_eq!(m.dc_id, 4);
    let r = bounded(
        c.client
            .invoke_in_dc(4, &tl::functions::auth::ImportLoginToken { token: m.token }),
    )
    .await
    .unwrap();
    assert!(matches!(r, tl::enums::auth::LoginToken::Success(_)));
    c.session.set_home_dc_id(4).await.unwrap();
    let me = bounded(c.client.get_me()).await.unwrap();
    assert_eq!(me.first_name(), Some("Remote"));
}

#[tokio::test]
async fn qr_login_with_2fa_asks_for_the_password() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550004005", "QrSecure").password("pw"));
    let c = client(&dc, 2).await;
    let tl::enums::auth::LoginToken::Token(t) = bounded(c.client.invoke(&export())).await.unwrap()
    else {
        panic!("expected a token");
    };
    dc.scan_qr(&t.token, "+15550004005").unwrap();
    let e = rpc_error(bounded(c.client.invoke(&export())).await);
    assert_eq!(e.name, "SESSION_PASSWORD_NEEDED");
    let tl::enums::account::Password::Password(pw) =
        bounded(c.client.invoke(&tl::functions::account::GetPassword {}))
            .await
            .unwrap();
    let user = bounded(
        c.client
            .check_password(grammers_client::client::PasswordToken::new(pw), "pw"),
    )
    .await
    .unwrap();
    assert_eq!(user.first_name(), Some("QrSecure"));
}
