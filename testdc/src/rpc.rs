//! API methods: one function call per RPC, deserialised with grammers' own TL types.

use std::time::SystemTime;

use grammers_tl_types::{self as tl, Cursor, Deserializable, Identifiable, Serializable};

/// The value of a `Result<_, Reply>`, or its refusal answered at once.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply,
        }
    };
}

mod channel_admin;
mod channel_posts;
pub(crate) mod control_send;
mod difference;
mod download;
pub(crate) mod media;
mod private_posts;

/// The channel a peer names, for the caller, who must be a member (CHANNEL_PRIVATE otherwise);
/// any other peer is PEER_ID_INVALID (a private chat's edits, pins and deletions are
/// `private_posts`).
fn channel_of(w: &World, me: i64, peer: &tl::enums::InputPeer) -> Result<i64, Reply> {
    match resolve_input_peer(w, me, peer)? {
        PeerRef::Channel(id) => Ok(id),
        PeerRef::User(_) => Err(err(400, "PEER_ID_INVALID")),
    }
}

/// The user logged in on this connection's key.
fn caller(w: &World, ctx: &Ctx<'_>) -> Result<i64, Reply> {
    w.bound_user(ctx.key_id, ctx.dc_id)
        .map(|u| u.id)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))
}

use crate::mtp::{read_u32, KeyId};
use crate::shared::{Delivery, Shared};
use crate::srp;
use crate::tlb::{self, ChannelView, MessageView, UserView};
use crate::updates::Change;
use crate::world::{
    normalize_phone, random_i64, unix_now, Binding, ChannelMsg, MsgRec, PeerRef, PendingCode,
    SrpPending, StoredMessage, UserRec, World,
};

/// What the connection sends back for one RPC.
#[derive(Debug)]
pub enum Reply {
    Result(Vec<u8>),
    Error(i32, String),
    /// Black hole: accept the request and never answer.
    Swallow,
}

fn err(code: i32, name: impl Into<String>) -> Reply {
    Reply::Error(code, name.into())
}

fn ok<T: Serializable>(value: T) -> Reply {
    Reply::Result(value.to_bytes())
}

pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub dc_id: i32,
    pub key_id: KeyId,
}

const INVOKE_WITH_LAYER: u32 = 0xda9b0d0d;
const INIT_CONNECTION: u32 = 0xc1cd5ea9;
const INVOKE_WITHOUT_UPDATES: u32 = 0xbf9459b7;
const INVOKE_AFTER_MSG: u32 = 0xcb9f372d;
const INVOKE_AFTER_MSGS: u32 = 0x3dc4b4f0;

/// What a client's `initConnection` said about itself. grammers sends one as the first request
/// of every connection it opens, so this is what "Telegram" learns about the client each time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientInit {
    /// The layer of the `invokeWithLayer` around it, when there was one.
    pub layer: Option<i32>,
    pub api_id: i32,
    pub device_model: String,
    pub system_version: String,
    pub app_version: String,
    pub system_lang_code: String,
    pub lang_pack: String,
    pub lang_code: String,
}

/// Strips `invokeWithLayer`, `initConnection` and friends: the inner query, and what its
/// `initConnection` carried if it was wrapped in one.
pub fn unwrap_request(mut body: &[u8]) -> Option<(&[u8], Option<ClientInit>)> {
    let mut layer = None;
    let mut init = None;
    for _ in 0..8 {
        match read_u32(body, 0)? {
            INVOKE_WITH_LAYER => {
                layer = Some(crate::mtp::read_i32(body, 4)?);
                body = body.get(8..)?;
            }
            INVOKE_AFTER_MSG => body = body.get(12..)?,
            INVOKE_WITHOUT_UPDATES => body = body.get(4..)?,
            INVOKE_AFTER_MSGS => {
                let mut cur = Cursor::from_slice(body.get(4..)?);
                Vec::<i64>::deserialize(&mut cur).ok()?;
                body = body.get(4 + cur.pos()..)?;
            }
            INIT_CONNECTION => {
                let mut cur = Cursor::from_slice(body.get(4..)?);
                let flags = u32::deserialize(&mut cur).ok()?;
                let api_id = i32::deserialize(&mut cur).ok()?;
                let mut text = || String::deserialize(&mut cur).ok();
                let (device_model, system_version, app_version) = (text()?, text()?, text()?);
                let (system_lang_code, lang_pack, lang_code) = (text()?, text()?, text()?);
                if flags & 1 != 0 {
                    tl::enums::InputClientProxy::deserialize(&mut cur).ok()?;
                }
                if flags & 2 != 0 {
                    tl::enums::Jsonvalue::deserialize(&mut cur).ok()?;
                }
                init = Some(ClientInit {
                    layer,
                    api_id,
                    device_model,
                    system_version,
                    app_version,
                    system_lang_code,
                    lang_pack,
                    lang_code,
                });
                body = body.get(4 + cur.pos()..)?;
            }
            _ => return Some((body, init)),
        }
    }
    None
}

fn parse<T: Deserializable>(body: &[u8]) -> Option<T> {
    let mut cur = Cursor::from_slice(body.get(4..)?);
    T::deserialize(&mut cur).ok()
}

macro_rules! req {
    ($ty:ty, $body:expr) => {
        match parse::<$ty>($body) {
            Some(r) => r,
            None => return err(400, "INPUT_FETCH_ERROR"),
        }
    };
}

/// Requests whose answer a client builds on (a code was sent, a key is now logged in, an
/// export may be imported): a persisted testdc writes the world out before answering them, so a
/// crash right after cannot take back what the client was told. Everything else is batched.
pub fn persist_before_answer(query: &[u8]) -> bool {
    read_u32(query, 0).is_some_and(|id| {
        is_unauthenticated(id)
            || [
                tl::functions::auth::LogOut::CONSTRUCTOR_ID,
                tl::functions::auth::ExportAuthorization::CONSTRUCTOR_ID,
                // A channel or an invite link a client was told about must survive a restart.
                tl::functions::channels::CreateChannel::CONSTRUCTOR_ID,
                tl::functions::channels::DeleteChannel::CONSTRUCTOR_ID,
                tl::functions::channels::JoinChannel::CONSTRUCTOR_ID,
                tl::functions::channels::LeaveChannel::CONSTRUCTOR_ID,
                tl::functions::channels::EditAdmin::CONSTRUCTOR_ID,
                tl::functions::channels::UpdateUsername::CONSTRUCTOR_ID,
                tl::functions::channels::EditTitle::CONSTRUCTOR_ID,
                tl::functions::messages::EditChatAbout::CONSTRUCTOR_ID,
                tl::functions::messages::EditMessage::CONSTRUCTOR_ID,
                tl::functions::channels::DeleteMessages::CONSTRUCTOR_ID,
                tl::functions::messages::DeleteMessages::CONSTRUCTOR_ID,
                tl::functions::messages::UpdatePinnedMessage::CONSTRUCTOR_ID,
                tl::functions::messages::ExportChatInvite::CONSTRUCTOR_ID,
                tl::functions::messages::ImportChatInvite::CONSTRUCTOR_ID,
                // A message, or a file, a client was told about must survive too.
                tl::functions::messages::SendMessage::CONSTRUCTOR_ID,
                tl::functions::messages::UploadMedia::CONSTRUCTOR_ID,
                tl::functions::messages::SendMedia::CONSTRUCTOR_ID,
                tl::functions::messages::SendMultiMedia::CONSTRUCTOR_ID,
            ]
            .contains(&id)
    })
}

/// Methods that work without a logged-in user.
fn is_unauthenticated(id: u32) -> bool {
    use tl::functions::*;
    [
        help::GetConfig::CONSTRUCTOR_ID,
        help::GetNearestDc::CONSTRUCTOR_ID,
        auth::SendCode::CONSTRUCTOR_ID,
        auth::ResendCode::CONSTRUCTOR_ID,
        auth::SignIn::CONSTRUCTOR_ID,
        auth::SignUp::CONSTRUCTOR_ID,
        auth::CheckPassword::CONSTRUCTOR_ID,
        auth::ExportLoginToken::CONSTRUCTOR_ID,
        auth::ImportLoginToken::CONSTRUCTOR_ID,
        auth::ImportBotAuthorization::CONSTRUCTOR_ID,
        auth::ImportAuthorization::CONSTRUCTOR_ID,
        account::GetPassword::CONSTRUCTOR_ID,
    ]
    .contains(&id)
}

pub async fn dispatch(ctx: &Ctx<'_>, body: &[u8]) -> Reply {
    let Some(id) = read_u32(body, 0) else {
        return err(400, "INPUT_FETCH_ERROR");
    };
    let method = tl::name_for_id(id);

    // Faults come first: they model the network and Telegram's limits, not the method. A
    // phone's own faults apply to the requests that name it and to the sessions logged in as it.
    let phone = request_phone(id, body)
        .map(|p| normalize_phone(&p))
        .or_else(|| {
            ctx.shared
                .world()
                .bound_user(ctx.key_id, ctx.dc_id)
                .and_then(|u| u.phone.clone())
        });
    let (black_hole, delay) = {
        let f = ctx.shared.faults();
        (
            f.black_holed(phone.as_deref()),
            f.delay_for(phone.as_deref()),
        )
    };
    if black_hole {
        ctx.shared
            .swallowed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Reply::Swallow;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let flooded = ctx
        .shared
        .faults()
        .flood_remaining(method, phone.as_deref());
    if let Some(secs) = flooded {
        return err(420, format!("FLOOD_WAIT_{secs}"));
    }
    if !is_unauthenticated(id) {
        let w = ctx.shared.world();
        if let Some(reply) = check_authorized(&w, ctx) {
            return reply;
        }
    }

    use tl::functions::*;
    match id {
        help::GetConfig::CONSTRUCTOR_ID => {
            ok(tlb::config(unix_now(), ctx.dc_id, &ctx.shared.addrs))
        }
        help::GetNearestDc::CONSTRUCTOR_ID => ok(tl::enums::NearestDc::Dc(tl::types::NearestDc {
            country: "ZZ".into(),
            this_dc: ctx.dc_id,
            nearest_dc: ctx.dc_id,
        })),
        auth::SendCode::CONSTRUCTOR_ID => send_code(ctx, req!(auth::SendCode, body)),
        auth::ResendCode::CONSTRUCTOR_ID => {
            let r = req!(auth::ResendCode, body);
            resend_code(ctx, &r.phone_number, &r.phone_code_hash)
        }
        auth::SignIn::CONSTRUCTOR_ID => sign_in(ctx, req!(auth::SignIn, body)),
        auth::SignUp::CONSTRUCTOR_ID => sign_up(ctx, req!(auth::SignUp, body)),
        account::GetPassword::CONSTRUCTOR_ID => get_password(ctx).await,
        auth::CheckPassword::CONSTRUCTOR_ID => check_password(ctx, req!(auth::CheckPassword, body)),
        auth::ExportLoginToken::CONSTRUCTOR_ID => export_login_token(ctx),
        auth::ImportLoginToken::CONSTRUCTOR_ID => {
            import_login_token(ctx, &req!(auth::ImportLoginToken, body).token)
        }
        auth::ImportBotAuthorization::CONSTRUCTOR_ID => import_bot(
            ctx,
            &req!(auth::ImportBotAuthorization, body).bot_auth_token,
        ),
        auth::ExportAuthorization::CONSTRUCTOR_ID => {
            let _ = req!(auth::ExportAuthorization, body);
            export_authorization(ctx)
        }
        auth::ImportAuthorization::CONSTRUCTOR_ID => {
            let r = req!(auth::ImportAuthorization, body);
            import_authorization(ctx, r.id, r.bytes)
        }
        auth::LogOut::CONSTRUCTOR_ID => {
            ctx.shared.world().bindings.remove(&(ctx.key_id, ctx.dc_id));
            ok(tl::enums::auth::LoggedOut::Out(
                tl::types::auth::LoggedOut {
                    future_auth_token: None,
                },
            ))
        }
        updates::GetState::CONSTRUCTOR_ID => {
            let w = ctx.shared.world();
            let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id) else {
                return err(401, "AUTH_KEY_UNREGISTERED");
            };
            ok(state_of(me))
        }
        updates::GetDifference::CONSTRUCTOR_ID => {
            difference::get_difference(ctx, req!(updates::GetDifference, body))
        }
        updates::GetChannelDifference::CONSTRUCTOR_ID => {
            difference::get_channel_difference(ctx, req!(updates::GetChannelDifference, body))
        }
        account::UpdateStatus::CONSTRUCTOR_ID => ok(true),
        users::GetUsers::CONSTRUCTOR_ID => get_users(ctx, req!(users::GetUsers, body).id),
        users::GetFullUser::CONSTRUCTOR_ID => get_full_user(ctx, req!(users::GetFullUser, body).id),
        contacts::ResolveUsername::CONSTRUCTOR_ID => {
            resolve_username(ctx, &req!(contacts::ResolveUsername, body).username)
        }
        contacts::ResolvePhone::CONSTRUCTOR_ID => {
            resolve_phone(ctx, &req!(contacts::ResolvePhone, body).phone)
        }
        messages::SendMessage::CONSTRUCTOR_ID => {
            send_message(ctx, req!(messages::SendMessage, body))
        }
        upload::SaveFilePart::CONSTRUCTOR_ID => {
            let r = req!(upload::SaveFilePart, body);
            media::save_part(ctx, r.file_id, r.file_part, None, r.bytes)
        }
        upload::SaveBigFilePart::CONSTRUCTOR_ID => {
            let r = req!(upload::SaveBigFilePart, body);
            media::save_part(
                ctx,
                r.file_id,
                r.file_part,
                Some(r.file_total_parts),
                r.bytes,
            )
        }
        upload::GetFile::CONSTRUCTOR_ID => download::get_file(ctx, req!(upload::GetFile, body)),
        messages::UploadMedia::CONSTRUCTOR_ID => {
            media::upload_media(ctx, req!(messages::UploadMedia, body))
        }
        messages::SendMedia::CONSTRUCTOR_ID => {
            media::send_media(ctx, req!(messages::SendMedia, body))
        }
        messages::SendMultiMedia::CONSTRUCTOR_ID => {
            media::send_multi_media(ctx, req!(messages::SendMultiMedia, body))
        }
        messages::GetDialogs::CONSTRUCTOR_ID => {
            let r = req!(messages::GetDialogs, body);
            get_dialogs(ctx, r.limit)
        }
        messages::GetMessages::CONSTRUCTOR_ID => {
            private_posts::get_messages(ctx, req!(messages::GetMessages, body))
        }
        channels::GetMessages::CONSTRUCTOR_ID => {
            channel_posts::get_messages(ctx, req!(channels::GetMessages, body))
        }
        messages::GetHistory::CONSTRUCTOR_ID => {
            let r = req!(messages::GetHistory, body);
            get_history(ctx, r.peer, r.offset_id, r.limit)
        }
        channels::CreateChannel::CONSTRUCTOR_ID => {
            create_channel(ctx, req!(channels::CreateChannel, body))
        }
        channels::GetFullChannel::CONSTRUCTOR_ID => {
            channel_admin::get_full_channel(ctx, req!(channels::GetFullChannel, body))
        }
        channels::EditTitle::CONSTRUCTOR_ID => {
            channel_admin::edit_title(ctx, req!(channels::EditTitle, body))
        }
        messages::EditChatAbout::CONSTRUCTOR_ID => {
            channel_admin::edit_about(ctx, req!(messages::EditChatAbout, body))
        }
        channels::LeaveChannel::CONSTRUCTOR_ID => {
            channel_admin::leave_channel(ctx, req!(channels::LeaveChannel, body))
        }
        channels::DeleteChannel::CONSTRUCTOR_ID => {
            channel_admin::delete_channel(ctx, req!(channels::DeleteChannel, body))
        }
        channels::JoinChannel::CONSTRUCTOR_ID => {
            channel_admin::join_channel(ctx, req!(channels::JoinChannel, body))
        }
        messages::ExportChatInvite::CONSTRUCTOR_ID => {
            channel_admin::export_invite(ctx, req!(messages::ExportChatInvite, body))
        }
        messages::ImportChatInvite::CONSTRUCTOR_ID => {
            channel_admin::import_invite(ctx, &req!(messages::ImportChatInvite, body).hash)
        }
        channels::EditAdmin::CONSTRUCTOR_ID => {
            channel_admin::edit_admin(ctx, req!(channels::EditAdmin, body))
        }
        messages::EditMessage::CONSTRUCTOR_ID => {
            let r = req!(messages::EditMessage, body);
            if private_posts::is_private(&r.peer) {
                private_posts::edit_message(ctx, r)
            } else {
                channel_posts::edit_message(ctx, r)
            }
        }
        channels::DeleteMessages::CONSTRUCTOR_ID => {
            channel_posts::delete_messages(ctx, req!(channels::DeleteMessages, body))
        }
        messages::DeleteMessages::CONSTRUCTOR_ID => {
            private_posts::delete_messages(ctx, req!(messages::DeleteMessages, body))
        }
        messages::UpdatePinnedMessage::CONSTRUCTOR_ID => {
            let r = req!(messages::UpdatePinnedMessage, body);
            if private_posts::is_private(&r.peer) {
                private_posts::update_pinned(ctx, r)
            } else {
                channel_posts::update_pinned(ctx, r)
            }
        }
        channels::CheckUsername::CONSTRUCTOR_ID => {
            channel_admin::check_username(ctx, req!(channels::CheckUsername, body))
        }
        channels::UpdateUsername::CONSTRUCTOR_ID => {
            channel_admin::update_username(ctx, req!(channels::UpdateUsername, body))
        }
        channels::GetChannels::CONSTRUCTOR_ID => {
            let r = req!(channels::GetChannels, body);
            let w = ctx.shared.world();
            let me = w
                .bound_user(ctx.key_id, ctx.dc_id)
                .map(|u| u.id)
                .unwrap_or(0);
            let chats =
                r.id.iter()
                    .filter_map(|c| match c {
                        tl::enums::InputChannel::Channel(c) => w.channels.get(&c.channel_id),
                        _ => None,
                    })
                    .map(|c| channel_tl(c, me))
                    .collect();
            ok(tl::enums::messages::Chats::Chats(
                tl::types::messages::Chats { chats },
            ))
        }
        _ if method == "unknown" => err(400, "INPUT_METHOD_INVALID"),
        _ => {
            tracing::debug!(method, "testdc does not implement this method");
            err(400, "METHOD_NOT_IMPLEMENTED_IN_TESTDC")
        }
    }
}

/// The phone a login request is about, so flood waits can target one number before login.
fn request_phone(id: u32, body: &[u8]) -> Option<String> {
    use tl::functions::auth;
    match id {
        auth::SendCode::CONSTRUCTOR_ID => parse::<auth::SendCode>(body).map(|r| r.phone_number),
        auth::SignIn::CONSTRUCTOR_ID => parse::<auth::SignIn>(body).map(|r| r.phone_number),
        _ => None,
    }
}

fn check_authorized(w: &World, ctx: &Ctx<'_>) -> Option<Reply> {
    match w.binding(ctx.key_id, ctx.dc_id) {
        None => Some(err(401, "AUTH_KEY_UNREGISTERED")),
        Some(Binding::PasswordPending(_)) => Some(err(401, "SESSION_PASSWORD_NEEDED")),
        Some(Binding::Revoked(kind)) => Some(err(401, kind.error_name())),
        Some(Binding::User(id)) => match w.users.get(id) {
            Some(u) if u.banned => Some(err(401, "USER_DEACTIVATED_BAN")),
            Some(_) => None,
            None => Some(err(401, "AUTH_KEY_UNREGISTERED")),
        },
    }
}

fn user_tl(u: &UserRec, viewer: i64) -> tl::enums::User {
    tlb::user(UserView {
        id: u.id,
        access_hash: u.access_hash,
        is_self: u.id == viewer,
        bot: u.bot,
        first_name: &u.first_name,
        last_name: u.last_name.as_deref(),
        username: u.username.as_deref(),
        phone: u.phone.as_deref(),
    })
}

fn channel_tl(c: &crate::world::ChannelRec, viewer: i64) -> tl::enums::Chat {
    tlb::channel(ChannelView {
        id: c.id,
        access_hash: c.access_hash,
        title: &c.title,
        username: c.username.as_deref(),
        broadcast: c.broadcast,
        creator: c.creator == viewer,
        date: c.date,
        admin_rights: c
            .admins
            .iter()
            .find(|a| a.user == viewer)
            .map(|a| a.rights.as_slice()),
        left: !c.members.contains(&viewer),
        participants: c.members.len() as i32,
    })
}

fn state_of(u: &UserRec) -> tl::enums::updates::State {
    tl::types::updates::State {
        pts: u.pts,
        qts: 0,
        date: unix_now(),
        seq: 0,
        unread_count: 0,
    }
    .into()
}

fn authorization(w: &World, user: i64) -> tl::enums::auth::Authorization {
    let user = w
        .users
        .get(&user)
        .map(|u| user_tl(u, user))
        .unwrap_or(tl::enums::User::Empty(tl::types::UserEmpty { id: user }));
    tl::types::auth::Authorization {
        setup_password_required: false,
        otherwise_relogin_days: None,
        tmp_sessions: None,
        future_auth_token: None,
        user,
    }
    .into()
}

/// Logs `(key, dc)` in as `user`, or asks for the password first when the account has one.
fn complete_login(w: &mut World, ctx: &Ctx<'_>, user: i64, password_checked: bool) -> Reply {
    let Some(u) = w.users.get(&user) else {
        return err(400, "USER_ID_INVALID");
    };
    if u.banned {
        return err(400, "PHONE_NUMBER_BANNED");
    }
    if u.password.is_some() && !password_checked {
        w.bindings
            .insert((ctx.key_id, ctx.dc_id), Binding::PasswordPending(user));
        return err(401, "SESSION_PASSWORD_NEEDED");
    }
    w.bindings
        .insert((ctx.key_id, ctx.dc_id), Binding::User(user));
    w.srp.remove(&(ctx.key_id, ctx.dc_id));
    ok(authorization(w, user))
}

fn send_code(ctx: &Ctx<'_>, r: tl::functions::auth::SendCode) -> Reply {
    // Telegram takes the number as clients send it, digits (after an optional `+`); a number
    // with spaces, dashes or brackets in it is not one.
    let digits = r.phone_number.strip_prefix('+').unwrap_or(&r.phone_number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return err(400, "PHONE_NUMBER_INVALID");
    }
    let phone = normalize_phone(&r.phone_number);
    if phone.len() < 5 || phone.len() > 15 {
        return err(400, "PHONE_NUMBER_INVALID");
    }
    if r.api_id == 0 {
        return err(400, "API_ID_INVALID");
    }
    let cfg = &ctx.shared.cfg;
    let mut w = ctx.shared.world();
    if w.user_by_phone(&phone).is_none() && cfg.sandbox_directory {
        w.sandbox_user(&phone, ctx.dc_id);
    }
    if let Some(u) = w.user_by_phone(&phone) {
        if u.banned {
            return err(400, "PHONE_NUMBER_BANNED");
        }
        if u.registered && u.dc_id != ctx.dc_id {
            return err(303, format!("PHONE_MIGRATE_{}", u.dc_id));
        }
    }
    let code = w.new_code(cfg.fixed_code.as_deref());
    let phone_code_hash = format!("{:016x}", random_i64());
    tracing::info!(phone, code, "testdc: login code sent");
    w.last_codes.insert(phone.clone(), code.clone());
    w.last_code_apps
        .insert(phone.clone(), (r.api_id, r.api_hash.clone()));
    w.codes.insert(
        phone,
        PendingCode {
            phone_code_hash: phone_code_hash.clone(),
            code: code.clone(),
            key_id: ctx.key_id,
            issued: SystemTime::now(),
            signup_allowed: false,
        },
    );
    ok(tl::enums::auth::SentCode::Code(tl::types::auth::SentCode {
        r#type: tl::types::auth::SentCodeTypeApp {
            length: code.len() as i32,
        }
        .into(),
        phone_code_hash,
        next_type: None,
        timeout: None,
    }))
}

fn resend_code(ctx: &Ctx<'_>, phone: &str, hash: &str) -> Reply {
    let phone = normalize_phone(phone);
    let mut w = ctx.shared.world();
    match w.codes.get_mut(&phone) {
        Some(p) if p.phone_code_hash == hash && p.key_id == ctx.key_id => {
            p.issued = SystemTime::now();
            let len = p.code.len() as i32;
            ok(tl::enums::auth::SentCode::Code(tl::types::auth::SentCode {
                r#type: tl::types::auth::SentCodeTypeApp { length: len }.into(),
                phone_code_hash: hash.to_owned(),
                next_type: None,
                timeout: None,
            }))
        }
        _ => err(400, "PHONE_CODE_EXPIRED"),
    }
}

/// Checks a code against the pending login of this auth key. `Err` is the reply to send.
fn verify_code(
    w: &mut World,
    ctx: &Ctx<'_>,
    phone: &str,
    hash: &str,
    code: Option<&str>,
) -> Result<(), Reply> {
    let lifetime = ctx.shared.cfg.code_lifetime;
    // A hash is only valid for the auth key that asked for it, like Telegram's: signing in from
    // another client (another key) looks exactly like an expired code.
    let Some(p) = w.codes.get(phone) else {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    };
    if p.phone_code_hash != hash || p.key_id != ctx.key_id {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    if p.issued.elapsed().unwrap_or_default() >= lifetime {
        w.codes.remove(phone);
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    if p.signup_allowed && code.is_none() {
        return Ok(());
    }
    match code {
        None | Some("") => Err(err(400, "PHONE_CODE_EMPTY")),
        Some(c) if c != p.code => Err(err(400, "PHONE_CODE_INVALID")),
        Some(_) => Ok(()),
    }
}

fn sign_in(ctx: &Ctx<'_>, r: tl::functions::auth::SignIn) -> Reply {
    let phone = normalize_phone(&r.phone_number);
    let mut w = ctx.shared.world();
    if let Err(reply) = verify_code(
        &mut w,
        ctx,
        &phone,
        &r.phone_code_hash,
        r.phone_code.as_deref(),
    ) {
        return reply;
    }
    let user = w
        .user_by_phone(&phone)
        .map(|u| (u.id, u.registered, u.dc_id));
    match user {
        Some((_, true, dc)) if dc != ctx.dc_id => err(303, format!("PHONE_MIGRATE_{dc}")),
        Some((id, true, _)) => {
            w.codes.remove(&phone);
            complete_login(&mut w, ctx, id, false)
        }
        _ => {
            if let Some(p) = w.codes.get_mut(&phone) {
                p.signup_allowed = true;
            }
            ok(tl::enums::auth::Authorization::SignUpRequired(
                tl::types::auth::AuthorizationSignUpRequired {
                    terms_of_service: None,
                },
            ))
        }
    }
}

fn sign_up(ctx: &Ctx<'_>, r: tl::functions::auth::SignUp) -> Reply {
    let phone = normalize_phone(&r.phone_number);
    let mut w = ctx.shared.world();
    if let Err(reply) = verify_code(&mut w, ctx, &phone, &r.phone_code_hash, None) {
        return reply;
    }
    if !w.codes.get(&phone).is_some_and(|p| p.signup_allowed) {
        return err(400, "PHONE_NUMBER_UNOCCUPIED");
    }
    if r.first_name.trim().is_empty() {
        return err(400, "FIRSTNAME_INVALID");
    }
    w.codes.remove(&phone);
    let mut spec = crate::UserSpec::new(&phone, &r.first_name).dc(ctx.dc_id);
    spec.last_name = Some(r.last_name).filter(|s| !s.is_empty());
    let id = w.add_user(spec);
    complete_login(&mut w, ctx, id, false)
}

async fn get_password(ctx: &Ctx<'_>) -> Reply {
    let user = {
        let w = ctx.shared.world();
        match w.binding(ctx.key_id, ctx.dc_id) {
            Some(Binding::User(id)) | Some(Binding::PasswordPending(id)) => *id,
            _ => return err(401, "AUTH_KEY_UNREGISTERED"),
        }
    };
    // The verifier costs 100k PBKDF2 rounds: derive it once, off the runtime.
    let missing = {
        let w = ctx.shared.world();
        w.users.get(&user).and_then(|u| {
            u.password
                .as_ref()
                .filter(|p| p.verifier.is_none())
                .map(|p| (p.password.clone(), p.salt1.clone(), p.salt2.clone()))
        })
    };
    if let Some((password, salt1, salt2)) = missing {
        let v = tokio::task::spawn_blocking(move || {
            srp::verifier(&srp::password_x(password.as_bytes(), &salt1, &salt2))
        })
        .await;
        let Ok(v) = v else {
            return err(500, "INTERNAL_SERVER_ERROR");
        };
        let mut w = ctx.shared.world();
        if let Some(p) = w.users.get_mut(&user).and_then(|u| u.password.as_mut()) {
            p.verifier.get_or_insert(v);
        }
    }

    let mut w = ctx.shared.world();
    let mut secure_random = vec![0u8; 256];
    rand::Rng::fill(&mut rand::thread_rng(), &mut secure_random[..]);
    let mut new_salt = vec![0u8; 8];
    rand::Rng::fill(&mut rand::thread_rng(), &mut new_salt[..]);
    let pw = w
        .users
        .get(&user)
        .and_then(|u| u.password.as_ref())
        .and_then(|p| Some((p.salt1.clone(), p.salt2.clone(), p.verifier.clone()?)));
    let mut reply = tl::types::account::Password {
        has_recovery: false,
        has_secure_values: false,
        has_password: false,
        current_algo: None,
        srp_b: None,
        srp_id: None,
        hint: None,
        email_unconfirmed_pattern: None,
        new_algo: tlb::password_algo(&new_salt, &new_salt),
        new_secure_algo: tl::types::SecurePasswordKdfAlgoSha512 {
            salt: new_salt.clone(),
        }
        .into(),
        secure_random,
        pending_reset_date: None,
        login_email_pattern: None,
    };
    if let Some((salt1, salt2, v)) = pw {
        let challenge = srp::challenge(&v);
        let srp_id = random_i64();
        reply.has_password = true;
        reply.current_algo = Some(tlb::password_algo(&salt1, &salt2));
        reply.srp_b = Some(challenge.g_b.to_vec());
        reply.srp_id = Some(srp_id);
        reply.hint = Some("testdc".into());
        w.srp.insert(
            (ctx.key_id, ctx.dc_id),
            SrpPending {
                srp_id,
                user_id: user,
                challenge,
            },
        );
    }
    ok(tl::enums::account::Password::Password(reply))
}

fn check_password(ctx: &Ctx<'_>, r: tl::functions::auth::CheckPassword) -> Reply {
    let tl::enums::InputCheckPasswordSrp::Srp(input) = r.password else {
        return err(400, "PASSWORD_HASH_INVALID");
    };
    let mut w = ctx.shared.world();
    let Some(pending) = w.srp.get(&(ctx.key_id, ctx.dc_id)) else {
        return err(400, "SRP_ID_INVALID");
    };
    if pending.srp_id != input.srp_id {
        return err(400, "SRP_ID_INVALID");
    }
    let user = pending.user_id;
    if w.binding(ctx.key_id, ctx.dc_id) != Some(&Binding::PasswordPending(user)) {
        return err(400, "PASSWORD_HASH_INVALID");
    }
    let valid = w
        .users
        .get(&user)
        .and_then(|u| u.password.as_ref())
        .and_then(|p| {
            let v = p.verifier.as_ref()?;
            Some(srp::check(
                v,
                &pending.challenge,
                &p.salt1,
                &p.salt2,
                &input.a,
                &input.m1,
            ))
        })
        .unwrap_or(false);
    if !valid {
        return err(400, "PASSWORD_HASH_INVALID");
    }
    complete_login(&mut w, ctx, user, true)
}

fn export_login_token(ctx: &Ctx<'_>) -> Reply {
    let mut w = ctx.shared.world();
    let now = unix_now();
    let scanned = w
        .qr_tokens
        .iter()
        .find(|(_, t)| t.key_id == ctx.key_id && t.dc_id == ctx.dc_id && t.expires > now)
        .and_then(|(tok, t)| Some((tok.clone(), t.scanned_by?)));
    if let Some((token, user)) = scanned {
        return finish_qr(&mut w, ctx, token, user);
    }
    let (token, expires) = w.new_qr_token(ctx.key_id, ctx.dc_id);
    ok(tl::enums::auth::LoginToken::Token(
        tl::types::auth::LoginToken { expires, token },
    ))
}

fn finish_qr(w: &mut World, ctx: &Ctx<'_>, token: Vec<u8>, user: i64) -> Reply {
    let Some(dc) = w.users.get(&user).map(|u| u.dc_id) else {
        return err(400, "AUTH_TOKEN_INVALID");
    };
    if dc != ctx.dc_id {
        return ok(tl::enums::auth::LoginToken::MigrateTo(
            tl::types::auth::LoginTokenMigrateTo { dc_id: dc, token },
        ));
    }
    w.qr_tokens.remove(&token);
    match complete_login(w, ctx, user, false) {
        Reply::Result(auth) => match tl::enums::auth::Authorization::from_bytes(&auth) {
            Ok(authorization) => ok(tl::enums::auth::LoginToken::Success(
                tl::types::auth::LoginTokenSuccess { authorization },
            )),
            Err(_) => err(500, "INTERNAL_SERVER_ERROR"),
        },
        other => other,
    }
}

fn import_login_token(ctx: &Ctx<'_>, token: &[u8]) -> Reply {
    let mut w = ctx.shared.world();
    let now = unix_now();
    let Some(t) = w.qr_tokens.get(token).filter(|t| t.expires > now) else {
        return err(400, "AUTH_TOKEN_EXPIRED");
    };
    match t.scanned_by {
        Some(user) => finish_qr(&mut w, ctx, token.to_vec(), user),
        None => ok(tl::enums::auth::LoginToken::Token(
            tl::types::auth::LoginToken {
                expires: t.expires,
                token: token.to_vec(),
            },
        )),
    }
}

fn import_bot(ctx: &Ctx<'_>, token: &str) -> Reply {
    let mut w = ctx.shared.world();
    let Some(&id) = w.bot_tokens.get(token) else {
        return err(400, "ACCESS_TOKEN_INVALID");
    };
    let dc = w.users.get(&id).map(|u| u.dc_id).unwrap_or(ctx.dc_id);
    if dc != ctx.dc_id {
        return err(303, format!("USER_MIGRATE_{dc}"));
    }
    complete_login(&mut w, ctx, id, true)
}

fn export_authorization(ctx: &Ctx<'_>) -> Reply {
    let mut w = ctx.shared.world();
    let Some(user) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| u.id) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    let mut bytes = vec![0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes[..]);
    w.exported_auths.insert((user, bytes.clone()), ctx.dc_id);
    ok(tl::enums::auth::ExportedAuthorization::Authorization(
        tl::types::auth::ExportedAuthorization { id: user, bytes },
    ))
}

fn import_authorization(ctx: &Ctx<'_>, user: i64, bytes: Vec<u8>) -> Reply {
    let mut w = ctx.shared.world();
    if w.exported_auths.remove(&(user, bytes)).is_none() {
        return err(400, "AUTH_BYTES_INVALID");
    }
    complete_login(&mut w, ctx, user, true)
}

/// A message's entities as Telegram sends them: none at all rather than an empty list.
fn entities_tl(entities: &[crate::world::EntityRec]) -> Option<Vec<tl::enums::MessageEntity>> {
    (!entities.is_empty()).then(|| {
        entities
            .iter()
            .map(crate::world::EntityRec::to_tl)
            .collect()
    })
}

fn private_message_tl(m: &MsgRec) -> tl::enums::Message {
    tlb::message(MessageView {
        id: m.id,
        out: m.out,
        from: Some(
            tl::types::PeerUser {
                user_id: m.from_user,
            }
            .into(),
        ),
        peer: tl::types::PeerUser {
            user_id: m.peer_user,
        }
        .into(),
        date: m.date,
        text: &m.text,
        post: false,
        entities: entities_tl(&m.entities),
        edit_date: m.edit_date,
        pinned: m.pinned,
        media: m.media.as_ref(),
        grouped_id: m.grouped_id,
    })
}

fn channel_message_tl(
    c: &crate::world::ChannelRec,
    m: &ChannelMsg,
    viewer: i64,
) -> tl::enums::Message {
    tlb::message(MessageView {
        id: m.id,
        out: m.from_user == viewer,
        from: if c.broadcast {
            None
        } else {
            Some(
                tl::types::PeerUser {
                    user_id: m.from_user,
                }
                .into(),
            )
        },
        peer: tl::types::PeerChannel { channel_id: c.id }.into(),
        date: m.date,
        text: &m.text,
        post: c.broadcast,
        entities: entities_tl(&m.entities),
        edit_date: m.edit_date,
        pinned: m.pinned,
        media: m.media.as_ref(),
        grouped_id: m.grouped_id,
    })
}

fn input_user_id(w: &World, me: i64, input: &tl::enums::InputUser) -> Option<i64> {
    match input {
        tl::enums::InputUser::UserSelf => Some(me),
        tl::enums::InputUser::User(u) => {
            let rec = w.users.get(&u.user_id)?;
            // Telegram rejects a wrong access hash; so does testdc (bots may skip it, as on Telegram).
            (rec.access_hash == u.access_hash || u.user_id == me).then_some(u.user_id)
        }
        _ => None,
    }
}

fn get_users(ctx: &Ctx<'_>, ids: Vec<tl::enums::InputUser>) -> Reply {
    let w = ctx.shared.world();
    let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| u.id) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    let users: Vec<tl::enums::User> = ids
        .iter()
        .map(
            |i| match input_user_id(&w, me, i).and_then(|id| w.users.get(&id)) {
                Some(u) => user_tl(u, me),
                None => tl::enums::User::Empty(tl::types::UserEmpty {
                    id: match i {
                        tl::enums::InputUser::User(u) => u.user_id,
                        _ => 0,
                    },
                }),
            },
        )
        .collect();
    ok(users)
}

fn get_full_user(ctx: &Ctx<'_>, id: tl::enums::InputUser) -> Reply {
    let w = ctx.shared.world();
    let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| u.id) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    let Some(u) = input_user_id(&w, me, &id).and_then(|id| w.users.get(&id)) else {
        return err(400, "USER_ID_INVALID");
    };
    ok(tl::enums::users::UserFull::Full(
        tl::types::users::UserFull {
            full_user: tlb::user_full(u.id, None),
            chats: Vec::new(),
            users: vec![user_tl(u, me)],
        },
    ))
}

fn resolved(w: &World, me: i64, peer: PeerRef) -> Reply {
    match peer {
        PeerRef::User(id) => match w.users.get(&id) {
            Some(u) => ok(tl::enums::contacts::ResolvedPeer::Peer(
                tl::types::contacts::ResolvedPeer {
                    peer: tl::types::PeerUser { user_id: id }.into(),
                    chats: Vec::new(),
                    users: vec![user_tl(u, me)],
                },
            )),
            None => err(400, "USERNAME_NOT_OCCUPIED"),
        },
        PeerRef::Channel(id) => match w.channels.get(&id) {
            Some(c) => ok(tl::enums::contacts::ResolvedPeer::Peer(
                tl::types::contacts::ResolvedPeer {
                    peer: tl::types::PeerChannel { channel_id: id }.into(),
                    chats: vec![channel_tl(c, me)],
                    users: Vec::new(),
                },
            )),
            None => err(400, "USERNAME_NOT_OCCUPIED"),
        },
    }
}

fn resolve_username(ctx: &Ctx<'_>, username: &str) -> Reply {
    let w = ctx.shared.world();
    let me = w
        .bound_user(ctx.key_id, ctx.dc_id)
        .map(|u| u.id)
        .unwrap_or(0);
    let name = username.trim_start_matches('@').to_lowercase();
    if name.is_empty() {
        return err(400, "USERNAME_INVALID");
    }
    match w.usernames.get(&name) {
        Some(peer) => resolved(&w, me, *peer),
        None => err(400, "USERNAME_NOT_OCCUPIED"),
    }
}

fn resolve_phone(ctx: &Ctx<'_>, phone: &str) -> Reply {
    let w = ctx.shared.world();
    let me = w
        .bound_user(ctx.key_id, ctx.dc_id)
        .map(|u| u.id)
        .unwrap_or(0);
    match w.user_by_phone(phone).filter(|u| u.registered) {
        Some(u) => resolved(&w, me, PeerRef::User(u.id)),
        None => err(400, "PHONE_NOT_OCCUPIED"),
    }
}

fn resolve_input_peer(w: &World, me: i64, peer: &tl::enums::InputPeer) -> Result<PeerRef, Reply> {
    match peer {
        tl::enums::InputPeer::PeerSelf => Ok(PeerRef::User(me)),
        tl::enums::InputPeer::User(u) => match w.users.get(&u.user_id) {
            Some(rec) if rec.access_hash == u.access_hash || u.user_id == me => {
                Ok(PeerRef::User(u.user_id))
            }
            _ => Err(err(400, "PEER_ID_INVALID")),
        },
        tl::enums::InputPeer::Channel(c) => match w.channels.get(&c.channel_id) {
            Some(rec) if rec.access_hash == c.access_hash => {
                if rec.members.contains(&me) {
                    Ok(PeerRef::Channel(c.channel_id))
                } else {
                    Err(err(400, "CHANNEL_PRIVATE"))
                }
            }
            _ => Err(err(400, "CHANNEL_INVALID")),
        },
        _ => Err(err(400, "PEER_ID_INVALID")),
    }
}

/// The entities of a message being sent, checked as Telegram checks them: inside the text (in
/// UTF-16 code units), and a user mention in the input form with a user this sender may see.
fn entities_of(
    w: &World,
    me: i64,
    text: &str,
    entities: &[tl::enums::MessageEntity],
) -> Result<Vec<crate::world::EntityRec>, Reply> {
    use tl::enums::MessageEntity as E;
    let units = text.encode_utf16().count() as i64;
    let mut out = Vec::with_capacity(entities.len());
    for e in entities {
        let rec = |kind: &str, offset: i32, length: i32| crate::world::EntityRec {
            kind: kind.to_owned(),
            offset,
            length,
            url: None,
            user_id: None,
            language: None,
            collapsed: false,
        };
        let r = match e {
            E::Bold(x) => rec("bold", x.offset, x.length),
            E::Italic(x) => rec("italic", x.offset, x.length),
            E::Underline(x) => rec("underline", x.offset, x.length),
            E::Strike(x) => rec("strike", x.offset, x.length),
            E::Spoiler(x) => rec("spoiler", x.offset, x.length),
            E::Code(x) => rec("code", x.offset, x.length),
            E::Pre(x) => crate::world::EntityRec {
                language: Some(x.language.clone()).filter(|l| !l.is_empty()),
                ..rec("pre", x.offset, x.length)
            },
            E::TextUrl(x) => crate::world::EntityRec {
                url: Some(x.url.clone()),
                ..rec("text_url", x.offset, x.length)
            },
            E::Blockquote(x) => crate::world::EntityRec {
                collapsed: x.collapsed,
                ..rec("blockquote", x.offset, x.length)
            },
            E::InputMessageEntityMentionName(x) => {
                let user = match &x.user_id {
                    tl::enums::InputUser::User(u) => match w.users.get(&u.user_id) {
                        Some(rec) if rec.access_hash == u.access_hash || u.user_id == me => {
                            u.user_id
                        }
                        _ => return Err(err(400, "ENTITY_MENTION_USER_INVALID")),
                    },
                    tl::enums::InputUser::UserSelf => me,
                    _ => return Err(err(400, "ENTITY_MENTION_USER_INVALID")),
                };
                crate::world::EntityRec {
                    user_id: Some(user),
                    ..rec("input_mention_name", x.offset, x.length)
                }
            }
            // The received form is not what a client sends.
            E::MentionName(_) => return Err(err(400, "ENTITY_MENTION_USER_INVALID")),
            _ => continue,
        };
        let end = i64::from(r.offset) + i64::from(r.length);
        if r.offset < 0 || r.length <= 0 || end > units {
            return Err(err(400, "ENTITY_BOUNDS_INVALID"));
        }
        out.push(r);
    }
    Ok(out)
}

fn send_message(ctx: &Ctx<'_>, r: tl::functions::messages::SendMessage) -> Reply {
    let push;
    let reply = {
        let mut w = ctx.shared.world();
        let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| u.id) else {
            return err(401, "AUTH_KEY_UNREGISTERED");
        };
        // A resend after a dropped connection carries the same random_id: answer it again
        // instead of storing the message twice.
        if let Some(previous) = w.sent.get(&(me, r.random_id)) {
            return Reply::Result(previous.clone());
        }
        if r.message.trim().is_empty() {
            return err(400, "MESSAGE_EMPTY");
        }
        if r.message.chars().count() > 4096 {
            return err(400, "MESSAGE_TOO_LONG");
        }
        let to = tri!(resolve_input_peer(&w, me, &r.peer));
        let entities = tri!(entities_of(
            &w,
            me,
            &r.message,
            r.entities.as_deref().unwrap_or(&[])
        ));
        let reply_to = tri!(reply_to_of(&w, me, to, r.reply_to.as_ref()));
        let posted = tri!(post(
            &mut w,
            me,
            to,
            Outgoing {
                random_id: r.random_id,
                text: r.message,
                entities,
                reply_to,
                silent: r.silent,
                no_webpage: r.no_webpage,
                media: None,
                grouped_id: None,
            },
        ));
        push = posted.pushes;
        if let PeerRef::Channel(cid) = to {
            answered(&mut w, me, cid, posted.pts);
        }
        let bytes = match (to, posted.update) {
            // A private message's sender hears only the short form, as from Telegram.
            (PeerRef::User(_), tl::enums::Update::NewMessage(u)) => {
                tl::enums::Updates::UpdateShortSentMessage(tl::types::UpdateShortSentMessage {
                    out: true,
                    id: posted.id,
                    pts: u.pts,
                    pts_count: 1,
                    date: posted.date,
                    media: None,
                    entities: None,
                    ttl_period: None,
                })
                .to_bytes()
            }
            (_, update) => tl::enums::Updates::Updates(tl::types::Updates {
                updates: vec![
                    tl::types::UpdateMessageId {
                        id: posted.id,
                        random_id: r.random_id,
                    }
                    .into(),
                    update,
                ],
                users: posted.users,
                chats: posted.chats,
                date: posted.date,
                seq: 0,
            })
            .to_bytes(),
        };
        w.sent.insert((me, r.random_id), bytes.clone());
        Reply::Result(bytes)
    };
    ctx.shared.deliver(push);
    reply
}

/// The message a new one answers, which must exist in the same chat.
fn reply_to_of(
    w: &World,
    me: i64,
    to: PeerRef,
    reply_to: Option<&tl::enums::InputReplyTo>,
) -> Result<Option<i32>, Reply> {
    let id = match reply_to {
        None => return Ok(None),
        Some(tl::enums::InputReplyTo::Message(m)) => m.reply_to_msg_id,
        Some(_) => return Err(err(400, "REPLY_TO_INVALID")),
    };
    let exists = match to {
        PeerRef::User(other) => w
            .users
            .get(&me)
            .is_some_and(|u| u.history.iter().any(|m| m.id == id && m.peer_user == other)),
        PeerRef::Channel(cid) => w
            .channels
            .get(&cid)
            .is_some_and(|c| c.history.iter().any(|m| m.id == id)),
    };
    if exists {
        Ok(Some(id))
    } else {
        Err(err(400, "REPLY_MESSAGE_ID_INVALID"))
    }
}

/// One message as its sender sends it, checked already.
pub(crate) struct Outgoing {
    pub random_id: i64,
    pub text: String,
    pub entities: Vec<crate::world::EntityRec>,
    pub reply_to: Option<i32>,
    pub silent: bool,
    pub no_webpage: bool,
    pub media: Option<crate::world::FileRec>,
    pub grouped_id: Option<i64>,
}

/// A message stored by [`post`].
pub(crate) struct Posted {
    pub id: i32,
    pub date: i32,
    /// The sender's box pts (a private chat) or the channel's, after the message.
    pub pts: i32,
    /// The new message as its sender's update (UpdateNewMessage / UpdateNewChannelMessage).
    pub update: tl::enums::Update,
    pub users: Vec<tl::enums::User>,
    pub chats: Vec<tl::enums::Chat>,
    /// The recipient's copy of a private message: its id and pts in the recipient's box.
    pub copy: Option<(i32, i32)>,
    /// What everyone but the sender is told: the recipient of a private message, the other
    /// members of a channel.
    pub pushes: Vec<Delivery>,
}

/// Stores a message from `me` to `to` on both sides (a private chat) or in the channel, under
/// the channel's rights, and records it for the control API.
pub(crate) fn post(w: &mut World, me: i64, to: PeerRef, out: Outgoing) -> Result<Posted, Reply> {
    let date = unix_now();
    let posted = match to {
        PeerRef::User(other) => post_private(w, me, other, &out, date)?,
        PeerRef::Channel(cid) => post_to_channel(w, me, cid, &out, date)?,
    };
    let from_phone = w.users.get(&me).and_then(|u| u.phone.clone());
    w.messages.push(StoredMessage {
        from_user_id: me,
        from_phone,
        to,
        text: out.text,
        random_id: out.random_id,
        message_id: posted.id,
        date,
        entities: out.entities,
        reply_to: out.reply_to,
        silent: out.silent,
        no_webpage: out.no_webpage,
        media: out.media,
        grouped_id: out.grouped_id,
    });
    Ok(posted)
}

/// A private message: the sender's copy, and the recipient's under the recipient's next id,
/// each a change to its own box.
fn post_private(
    w: &mut World,
    me: i64,
    other: i64,
    out: &Outgoing,
    date: i32,
) -> Result<Posted, Reply> {
    let Some(sender) = w.users.get_mut(&me) else {
        return Err(err(401, "AUTH_KEY_UNREGISTERED"));
    };
    sender.last_msg_id += 1;
    let id = sender.last_msg_id;
    let pts = sender.log(1, date, Change::NewMessage { id });
    // Each copy knows the other's id.
    let pair = (other != me)
        .then(|| w.users.get(&other).map(|r| r.last_msg_id + 1))
        .flatten();
    let rec = message_rec(id, pts, other, me, true, out, date, pair);
    let message = private_message_tl(&rec);
    if let Some(sender) = w.users.get_mut(&me) {
        sender.history.push(rec);
    }
    let mut copy = None;
    let mut pushes = Vec::new();
    if let Some(rcpt) = w.users.get_mut(&other).filter(|_| other != me) {
        rcpt.last_msg_id += 1;
        let their_id = rcpt.last_msg_id;
        let their_pts = rcpt.log(1, date, Change::NewMessage { id: their_id });
        let rec = message_rec(their_id, their_pts, me, me, false, out, date, Some(id));
        let sender_tl = w.users.get(&me).map(|u| user_tl(u, other));
        pushes.push(Delivery {
            user: other,
            bytes: incoming_updates(&rec, out.silent, sender_tl).to_bytes(),
            channel: None,
        });
        if let Some(rcpt) = w.users.get_mut(&other) {
            rcpt.history.push(rec);
        }
        copy = Some((their_id, their_pts));
    }
    let users = w
        .users
        .get(&me)
        .map(|u| user_tl(u, me))
        .into_iter()
        .collect();
    Ok(Posted {
        id,
        date,
        pts,
        update: tl::types::UpdateNewMessage {
            message,
            pts,
            pts_count: 1,
        }
        .into(),
        users,
        chats: Vec::new(),
        copy,
        pushes,
    })
}

#[allow(clippy::too_many_arguments)]
fn message_rec(
    id: i32,
    pts: i32,
    peer_user: i64,
    from_user: i64,
    is_out: bool,
    out: &Outgoing,
    date: i32,
    pair: Option<i32>,
) -> MsgRec {
    MsgRec {
        id,
        pts,
        peer_user,
        from_user,
        out: is_out,
        text: out.text.clone(),
        date,
        media: out.media.clone(),
        grouped_id: out.grouped_id,
        entities: out.entities.clone(),
        edit_date: None,
        pinned: false,
        pair,
    }
}

/// How Telegram tells a user of a private message in its box: the short form for plain text
/// (incoming, or outgoing from another of the sender's devices), `updates` with the message and
/// its sender for anything with media.
pub(crate) fn incoming_updates(
    rec: &MsgRec,
    silent: bool,
    sender: Option<tl::enums::User>,
) -> tl::enums::Updates {
    if rec.media.is_none() {
        return tl::enums::Updates::UpdateShortMessage(tl::types::UpdateShortMessage {
            out: rec.out,
            mentioned: false,
            media_unread: false,
            silent,
            id: rec.id,
            user_id: rec.peer_user,
            message: rec.text.clone(),
            pts: rec.pts,
            pts_count: 1,
            date: rec.date,
            fwd_from: None,
            via_bot_id: None,
            reply_to: None,
            entities: entities_tl(&rec.entities),
            ttl_period: None,
        });
    }
    tl::enums::Updates::Updates(tl::types::Updates {
        updates: vec![tl::types::UpdateNewMessage {
            message: private_message_tl(rec),
            pts: rec.pts,
            pts_count: 1,
        }
        .into()],
        users: sender.into_iter().collect(),
        chats: Vec::new(),
        date: rec.date,
        seq: 0,
    })
}

/// A channel post, under the channel's rights; every other member is told of it.
fn post_to_channel(
    w: &mut World,
    me: i64,
    cid: i64,
    out: &Outgoing,
    date: i32,
) -> Result<Posted, Reply> {
    let Some(c) = w.channels.get_mut(&cid) else {
        return Err(err(400, "CHANNEL_INVALID"));
    };
    // In a broadcast channel only the creator and admins with the right post.
    if c.broadcast && !c.may(me, "post_messages") {
        return Err(err(403, "CHAT_WRITE_FORBIDDEN"));
    }
    let id = c.next_msg_id();
    let pts = c.log(1, date, Change::NewMessage { id });
    c.history.push(ChannelMsg {
        id,
        from_user: me,
        text: out.text.clone(),
        date,
        entities: out.entities.clone(),
        edit_date: None,
        pinned: false,
        media: out.media.clone(),
        grouped_id: out.grouped_id,
    });
    let c = &w.channels[&cid];
    let Some(msg) = c.history.last() else {
        return Err(err(500, "INTERNAL_SERVER_ERROR"));
    };
    let pushes = to_members(w, cid, Some(me), pts, &[me], |c, viewer| {
        tl::types::UpdateNewChannelMessage {
            message: channel_message_tl(c, msg, viewer),
            pts,
            pts_count: 1,
        }
        .into()
    });
    let users = w
        .users
        .get(&me)
        .map(|u| user_tl(u, me))
        .into_iter()
        .collect();
    Ok(Posted {
        id,
        date,
        pts,
        update: tl::types::UpdateNewChannelMessage {
            message: channel_message_tl(c, msg, me),
            pts,
            pts_count: 1,
        }
        .into(),
        users,
        chats: vec![channel_tl(c, me)],
        copy: None,
        pushes,
    })
}

/// One change of channel `cid` (now at `pts`) as each member but `skip` is told it: the update
/// as that member sees it, with the channel and the `users` it names.
pub(crate) fn to_members(
    w: &World,
    cid: i64,
    skip: Option<i64>,
    pts: i32,
    users: &[i64],
    update: impl Fn(&crate::world::ChannelRec, i64) -> tl::enums::Update,
) -> Vec<Delivery> {
    let Some(c) = w.channels.get(&cid) else {
        return Vec::new();
    };
    let date = unix_now();
    c.members
        .iter()
        .filter(|m| Some(**m) != skip)
        .map(|&viewer| Delivery {
            user: viewer,
            bytes: tl::enums::Updates::Updates(tl::types::Updates {
                updates: vec![update(c, viewer)],
                users: users
                    .iter()
                    .filter_map(|id| w.users.get(id))
                    .map(|u| user_tl(u, viewer))
                    .collect(),
                chats: vec![channel_tl(c, viewer)],
                date,
                seq: 0,
            })
            .to_bytes(),
            channel: Some((cid, pts)),
        })
        .collect()
}

/// The caller learnt channel `cid` up to `pts` from the answer to its own request.
pub(crate) fn answered(w: &mut World, me: i64, cid: i64, pts: i32) {
    if let Some(u) = w.users.get_mut(&me) {
        u.told(cid, pts);
    }
}

fn get_dialogs(ctx: &Ctx<'_>, limit: i32) -> Reply {
    let w = ctx.shared.world();
    let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    let limit = limit.clamp(1, 100) as usize;
    // Newest conversation first, as Telegram orders them.
    let mut entries: Vec<(i32, tl::enums::Dialog, tl::enums::Message)> = Vec::new();
    let mut users = vec![user_tl(me, me.id)];
    let mut chats = Vec::new();
    let mut seen = Vec::new();
    for m in me.history.iter().rev() {
        if seen.contains(&m.peer_user) {
            continue;
        }
        seen.push(m.peer_user);
        if m.peer_user != me.id {
            if let Some(u) = w.users.get(&m.peer_user) {
                users.push(user_tl(u, me.id));
            }
        }
        entries.push((
            m.date,
            tlb::dialog(
                tl::types::PeerUser {
                    user_id: m.peer_user,
                }
                .into(),
                m.id,
                None,
            ),
            private_message_tl(m),
        ));
    }
    for c in w.channels.values().filter(|c| c.members.contains(&me.id)) {
        chats.push(channel_tl(c, me.id));
        let (date, top, message) = match c.history.last() {
            Some(m) => (m.date, m.id, Some(channel_message_tl(c, m, me.id))),
            None => (c.date, 0, None),
        };
        let dialog = tlb::dialog(
            tl::types::PeerChannel { channel_id: c.id }.into(),
            top,
            Some(c.pts),
        );
        match message {
            Some(message) => entries.push((date, dialog, message)),
            None => entries.push((
                date,
                dialog,
                tl::enums::Message::Empty(tl::types::MessageEmpty {
                    id: 0,
                    peer_id: None,
                }),
            )),
        }
    }
    entries.sort_by_key(|(date, _, _)| std::cmp::Reverse(*date));
    entries.truncate(limit);
    let mut dialogs = Vec::new();
    let mut messages = Vec::new();
    for (_, d, m) in entries {
        dialogs.push(d);
        if !matches!(m, tl::enums::Message::Empty(_)) {
            messages.push(m);
        }
    }
    ok(tl::enums::messages::Dialogs::Dialogs(
        tl::types::messages::Dialogs {
            dialogs,
            messages,
            chats,
            users,
        },
    ))
}

/// The newest `limit` messages older than `offset_id` (0: the newest of all).
fn get_history(ctx: &Ctx<'_>, peer: tl::enums::InputPeer, offset_id: i32, limit: i32) -> Reply {
    let w = ctx.shared.world();
    let Some((me, bot)) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| (u.id, u.bot)) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    // Bots read messages by id (getMessages), never a chat's history.
    if bot {
        return err(400, "BOT_METHOD_INVALID");
    }
    let limit = limit.clamp(1, 100) as usize;
    let peer = match resolve_input_peer(&w, me, &peer) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let (messages, chats, users) = match peer {
        PeerRef::User(other) => {
            let Some(rec) = w.users.get(&me) else {
                return err(401, "AUTH_KEY_UNREGISTERED");
            };
            let msgs = rec
                .history
                .iter()
                .rev()
                .filter(|m| m.peer_user == other)
                .filter(|m| offset_id <= 0 || m.id < offset_id)
                .take(limit)
                .map(private_message_tl)
                .collect();
            let users = [me, other]
                .iter()
                .filter_map(|id| w.users.get(id))
                .map(|u| user_tl(u, me))
                .collect();
            (msgs, Vec::new(), users)
        }
        PeerRef::Channel(cid) => {
            let Some(c) = w.channels.get(&cid) else {
                return err(400, "CHANNEL_INVALID");
            };
            let msgs = c
                .history
                .iter()
                .rev()
                .filter(|m| offset_id <= 0 || m.id < offset_id)
                .take(limit)
                .map(|m| channel_message_tl(c, m, me))
                .collect();
            let users = w
                .users
                .get(&me)
                .map(|u| user_tl(u, me))
                .into_iter()
                .collect();
            (msgs, vec![channel_tl(c, me)], users)
        }
    };
    ok(tl::enums::messages::Messages::Messages(
        tl::types::messages::Messages {
            messages,
            topics: Vec::new(),
            chats,
            users,
        },
    ))
}

fn create_channel(ctx: &Ctx<'_>, r: tl::functions::channels::CreateChannel) -> Reply {
    let mut w = ctx.shared.world();
    let Some(me) = w.bound_user(ctx.key_id, ctx.dc_id).map(|u| u.id) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    if r.title.trim().is_empty() {
        return err(400, "CHAT_TITLE_EMPTY");
    }
    let broadcast = r.broadcast || !r.megagroup;
    if r.about.chars().count() > 255 {
        return err(400, "CHAT_ABOUT_TOO_LONG");
    }
    let id = w.create_channel(me, &r.title, broadcast);
    let Some(c) = w.channels.get_mut(&id) else {
        return err(500, "INTERNAL_SERVER_ERROR");
    };
    c.about = r.about;
    let c = &*c;
    ok(tl::enums::Updates::Updates(tl::types::Updates {
        updates: vec![tl::types::UpdateChannel { channel_id: id }.into()],
        users: Vec::new(),
        chats: vec![channel_tl(c, me)],
        date: unix_now(),
        seq: 0,
    }))
}
