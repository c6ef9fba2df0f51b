//! Builders for the (very wide) layer-230 TL structs that testdc answers with.

use grammers_tl_types as tl;

pub fn peer_settings() -> tl::enums::PeerSettings {
    tl::types::PeerSettings {
        report_spam: false,
        add_contact: false,
        block_contact: false,
        share_contact: false,
        need_contacts_exception: false,
        report_geo: false,
        autoarchived: false,
        invite_members: false,
        request_chat_broadcast: false,
        business_bot_paused: false,
        business_bot_can_reply: false,
        geo_distance: None,
        request_chat_title: None,
        request_chat_date: None,
        business_bot_id: None,
        business_bot_manage_url: None,
        charge_paid_message_stars: None,
        registration_month: None,
        phone_country: None,
        name_change_date: None,
        photo_change_date: None,
    }
    .into()
}

pub fn notify_settings() -> tl::enums::PeerNotifySettings {
    tl::types::PeerNotifySettings {
        show_previews: None,
        silent: None,
        mute_until: None,
        ios_sound: None,
        android_sound: None,
        other_sound: None,
        stories_muted: None,
        stories_hide_sender: None,
        stories_ios_sound: None,
        stories_android_sound: None,
        stories_other_sound: None,
    }
    .into()
}

pub struct UserView<'a> {
    pub id: i64,
    pub access_hash: i64,
    pub is_self: bool,
    pub bot: bool,
    pub first_name: &'a str,
    pub last_name: Option<&'a str>,
    pub username: Option<&'a str>,
    pub phone: Option<&'a str>,
}

pub fn user(u: UserView<'_>) -> tl::enums::User {
    tl::types::User {
        is_self: u.is_self,
        contact: false,
        mutual_contact: false,
        deleted: false,
        bot: u.bot,
        bot_chat_history: false,
        bot_nochats: false,
        verified: false,
        restricted: false,
        min: false,
        bot_inline_geo: false,
        support: false,
        scam: false,
        apply_min_photo: false,
        fake: false,
        bot_attach_menu: false,
        premium: false,
        attach_menu_enabled: false,
        bot_can_edit: false,
        close_friend: false,
        stories_hidden: false,
        stories_unavailable: true,
        contact_require_premium: false,
        bot_business: false,
        bot_has_main_app: false,
        bot_forum_view: false,
        bot_forum_can_manage_topics: false,
        bot_can_manage_bots: false,
        bot_guestchat: false,
        bot_guard: false,
        id: u.id,
        access_hash: Some(u.access_hash),
        first_name: Some(u.first_name.to_owned()),
        last_name: u.last_name.map(str::to_owned),
        username: u.username.map(str::to_owned),
        // Telegram shows the phone only to its owner (and contacts).
        phone: if u.is_self {
            u.phone.map(|p| p.trim_start_matches('+').to_owned())
        } else {
            None
        },
        photo: None,
        status: None,
        bot_info_version: if u.bot { Some(1) } else { None },
        restriction_reason: None,
        bot_inline_placeholder: None,
        lang_code: None,
        emoji_status: None,
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        bot_active_users: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_community_id: None,
    }
    .into()
}

pub fn user_full(id: i64, about: Option<String>) -> tl::enums::UserFull {
    tl::types::UserFull {
        blocked: false,
        phone_calls_available: false,
        phone_calls_private: false,
        can_pin_message: true,
        has_scheduled: false,
        video_calls_available: false,
        voice_messages_forbidden: false,
        translations_disabled: false,
        stories_pinned_available: false,
        blocked_my_stories_from: false,
        wallpaper_overridden: false,
        contact_require_premium: false,
        read_dates_private: false,
        sponsored_enabled: false,
        can_view_revenue: false,
        bot_can_manage_emoji_status: false,
        display_gifts_button: false,
        noforwards_my_enabled: false,
        noforwards_peer_enabled: false,
        unofficial_security_risk: false,
        id,
        about,
        settings: peer_settings(),
        personal_photo: None,
        profile_photo: None,
        fallback_photo: None,
        notify_settings: notify_settings(),
        bot_info: None,
        pinned_msg_id: None,
        common_chats_count: 0,
        folder_id: None,
        ttl_period: None,
        theme: None,
        private_forward_name: None,
        bot_group_admin_rights: None,
        bot_broadcast_admin_rights: None,
        wallpaper: None,
        stories: None,
        business_work_hours: None,
        business_location: None,
        business_greeting_message: None,
        business_away_message: None,
        business_intro: None,
        birthday: None,
        personal_channel_id: None,
        personal_channel_message: None,
        stargifts_count: None,
        starref_program: None,
        bot_verification: None,
        send_paid_messages_stars: None,
        disallowed_gifts: None,
        stars_rating: None,
        stars_my_pending_rating: None,
        stars_my_pending_rating_date: None,
        main_tab: None,
        saved_music: None,
        note: None,
        bot_manager_id: None,
    }
    .into()
}

pub struct ChannelView<'a> {
    pub id: i64,
    pub access_hash: i64,
    pub title: &'a str,
    pub username: Option<&'a str>,
    pub broadcast: bool,
    pub creator: bool,
    pub date: i32,
    /// The viewer's admin rights, by ChatAdminRights flag name (`None`: not an admin).
    pub admin_rights: Option<&'a [String]>,
    /// The viewer is not a member.
    pub left: bool,
    pub participants: i32,
}

pub fn channel(c: ChannelView<'_>) -> tl::enums::Chat {
    tl::types::Channel {
        creator: c.creator,
        left: c.left,
        broadcast: c.broadcast,
        verified: false,
        megagroup: !c.broadcast,
        restricted: false,
        signatures: false,
        min: false,
        scam: false,
        has_link: false,
        has_geo: false,
        slowmode_enabled: false,
        call_active: false,
        call_not_empty: false,
        fake: false,
        gigagroup: false,
        noforwards: false,
        join_to_send: false,
        join_request: false,
        forum: false,
        stories_hidden: false,
        stories_hidden_min: false,
        stories_unavailable: true,
        signature_profiles: false,
        autotranslation: false,
        broadcast_messages_allowed: false,
        monoforum: false,
        forum_tabs: false,
        id: c.id,
        access_hash: Some(c.access_hash),
        title: c.title.to_owned(),
        username: c.username.map(str::to_owned),
        photo: tl::enums::ChatPhoto::Empty,
        date: c.date,
        restriction_reason: None,
        admin_rights: if c.creator {
            Some(admin_rights())
        } else {
            c.admin_rights.map(rights_named)
        },
        banned_rights: None,
        default_banned_rights: None,
        participants_count: Some(c.participants),
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        emoji_status: None,
        level: None,
        subscription_until_date: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_monoforum_id: None,
        linked_community_id: None,
    }
    .into()
}

fn admin_rights() -> tl::enums::ChatAdminRights {
    tl::types::ChatAdminRights {
        change_info: true,
        post_messages: true,
        edit_messages: true,
        delete_messages: true,
        ban_users: true,
        invite_users: true,
        pin_messages: true,
        add_admins: true,
        anonymous: false,
        manage_call: true,
        other: true,
        manage_topics: true,
        post_stories: true,
        edit_stories: true,
        delete_stories: true,
        manage_direct_messages: true,
        manage_ranks: true,
        manage_linked_peers: true,
        manage_welcome_messages: true,
    }
    .into()
}

/// The ChatAdminRights flags a client may name, in the TL's order.
pub const ADMIN_RIGHTS: [&str; 15] = [
    "change_info",
    "post_messages",
    "edit_messages",
    "delete_messages",
    "ban_users",
    "invite_users",
    "pin_messages",
    "add_admins",
    "anonymous",
    "manage_call",
    "other",
    "manage_topics",
    "post_stories",
    "edit_stories",
    "delete_stories",
];

/// ChatAdminRights with exactly the named flags set.
pub fn rights_named(names: &[String]) -> tl::enums::ChatAdminRights {
    let has = |flag: &str| names.iter().any(|n| n == flag);
    tl::types::ChatAdminRights {
        change_info: has("change_info"),
        post_messages: has("post_messages"),
        edit_messages: has("edit_messages"),
        delete_messages: has("delete_messages"),
        ban_users: has("ban_users"),
        invite_users: has("invite_users"),
        pin_messages: has("pin_messages"),
        add_admins: has("add_admins"),
        anonymous: has("anonymous"),
        manage_call: has("manage_call"),
        other: has("other"),
        manage_topics: has("manage_topics"),
        post_stories: has("post_stories"),
        edit_stories: has("edit_stories"),
        delete_stories: has("delete_stories"),
        manage_direct_messages: false,
        manage_ranks: false,
        manage_linked_peers: false,
        manage_welcome_messages: false,
    }
    .into()
}

/// The named flags of a ChatAdminRights a client sent.
pub fn rights_names(rights: &tl::enums::ChatAdminRights) -> Vec<String> {
    let tl::enums::ChatAdminRights::Rights(r) = rights;
    let set = [
        r.change_info,
        r.post_messages,
        r.edit_messages,
        r.delete_messages,
        r.ban_users,
        r.invite_users,
        r.pin_messages,
        r.add_admins,
        r.anonymous,
        r.manage_call,
        r.other,
        r.manage_topics,
        r.post_stories,
        r.edit_stories,
        r.delete_stories,
    ];
    ADMIN_RIGHTS
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// channels.getFullChannel's answer for a channel of `participants` members.
pub fn channel_full(
    id: i64,
    about: &str,
    participants: i32,
    admins: i32,
    pts: i32,
) -> tl::enums::ChatFull {
    tl::types::ChannelFull {
        can_view_participants: true,
        can_set_username: false,
        can_set_stickers: false,
        hidden_prehistory: false,
        can_set_location: false,
        has_scheduled: false,
        can_view_stats: false,
        blocked: false,
        can_delete_channel: false,
        antispam: false,
        participants_hidden: false,
        translations_disabled: false,
        stories_pinned_available: false,
        view_forum_as_messages: false,
        restricted_sponsored: false,
        can_view_revenue: false,
        paid_media_allowed: false,
        can_view_stars_revenue: false,
        paid_reactions_available: false,
        stargifts_available: false,
        paid_messages_available: false,
        has_welcome_messages: false,
        id,
        about: about.to_owned(),
        participants_count: Some(participants),
        admins_count: Some(admins),
        kicked_count: None,
        banned_count: None,
        online_count: None,
        read_inbox_max_id: 0,
        read_outbox_max_id: 0,
        unread_count: 0,
        chat_photo: tl::enums::Photo::Empty(tl::types::PhotoEmpty { id: 0 }),
        notify_settings: notify_settings(),
        exported_invite: None,
        bot_info: Vec::new(),
        migrated_from_chat_id: None,
        migrated_from_max_id: None,
        pinned_msg_id: None,
        stickerset: None,
        available_min_id: None,
        folder_id: None,
        linked_chat_id: None,
        location: None,
        slowmode_seconds: None,
        slowmode_next_send_date: None,
        stats_dc: None,
        pts,
        call: None,
        ttl_period: None,
        pending_suggestions: None,
        groupcall_default_join_as: None,
        theme_emoticon: None,
        requests_pending: None,
        recent_requesters: None,
        default_send_as: None,
        available_reactions: None,
        reactions_limit: None,
        stories: None,
        wallpaper: None,
        boosts_applied: None,
        boosts_unrestrict: None,
        emojiset: None,
        bot_verification: None,
        stargifts_count: None,
        send_paid_messages_stars: None,
        main_tab: None,
        guard_bot_id: None,
    }
    .into()
}

pub struct MessageView<'a> {
    pub id: i32,
    pub out: bool,
    pub from: Option<tl::enums::Peer>,
    pub peer: tl::enums::Peer,
    pub date: i32,
    pub text: &'a str,
    pub post: bool,
    pub entities: Option<Vec<tl::enums::MessageEntity>>,
    pub edit_date: Option<i32>,
    pub pinned: bool,
    pub media: Option<&'a crate::world::FileRec>,
    pub grouped_id: Option<i64>,
}

pub fn message(m: MessageView<'_>) -> tl::enums::Message {
    tl::types::Message {
        out: m.out,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: m.post,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: m.pinned,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: m.id,
        from_id: m.from,
        from_boosts_applied: None,
        from_rank: None,
        peer_id: m.peer,
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: m.date,
        message: m.text.to_owned(),
        media: m.media.map(message_media),
        reply_markup: None,
        entities: m.entities,
        // views and forwards share flag 10: both or neither.
        views: if m.post { Some(1) } else { None },
        forwards: if m.post { Some(0) } else { None },
        replies: None,
        edit_date: m.edit_date,
        post_author: None,
        grouped_id: m.grouped_id,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
    .into()
}

pub fn dialog(peer: tl::enums::Peer, top_message: i32, pts: Option<i32>) -> tl::enums::Dialog {
    tl::types::Dialog {
        pinned: false,
        unread_mark: false,
        view_forum_as_messages: false,
        peer,
        top_message,
        read_inbox_max_id: top_message,
        read_outbox_max_id: top_message,
        unread_count: 0,
        unread_mentions_count: 0,
        unread_reactions_count: 0,
        unread_poll_votes_count: 0,
        notify_settings: notify_settings(),
        pts,
        draft: None,
        folder_id: None,
        ttl_period: None,
    }
    .into()
}

pub fn config(date: i32, this_dc: i32, dcs: &[(i32, std::net::SocketAddr)]) -> tl::enums::Config {
    let dc_options = dcs
        .iter()
        .map(|(id, addr)| {
            tl::types::DcOption {
                ipv6: addr.is_ipv6(),
                media_only: false,
                tcpo_only: false,
                cdn: false,
                // grammers only stores options flagged static.
                r#static: true,
                this_port_only: false,
                id: *id,
                ip_address: addr.ip().to_string(),
                port: addr.port() as i32,
                secret: None,
            }
            .into()
        })
        .collect();
    tl::types::Config {
        default_p2p_contacts: false,
        preload_featured_stickers: false,
        revoke_pm_inbox: true,
        blocked_mode: false,
        force_try_ipv6: false,
        date,
        expires: date + 3600,
        test_mode: true,
        this_dc,
        dc_options,
        dc_txt_domain_name: "testdc.invalid".into(),
        chat_size_max: 200,
        megagroup_size_max: 200_000,
        forwarded_count_max: 100,
        online_update_period_ms: 210_000,
        offline_blur_timeout_ms: 5_000,
        offline_idle_timeout_ms: 30_000,
        online_cloud_timeout_ms: 300_000,
        notify_cloud_delay_ms: 30_000,
        notify_default_delay_ms: 1_500,
        push_chat_period_ms: 60_000,
        push_chat_limit: 2,
        edit_time_limit: 172_800,
        revoke_time_limit: i32::MAX,
        revoke_pm_time_limit: i32::MAX,
        rating_e_decay: 2_419_200,
        stickers_recent_limit: 200,
        channels_read_media_period: 604_800,
        tmp_sessions: None,
        call_receive_timeout_ms: 20_000,
        call_ring_timeout_ms: 90_000,
        call_connect_timeout_ms: 30_000,
        call_packet_timeout_ms: 10_000,
        me_url_prefix: "https://t.me/".into(),
        autoupdate_url_prefix: None,
        gif_search_username: None,
        venue_search_username: None,
        img_search_username: None,
        static_maps_provider: None,
        caption_length_max: 1024,
        message_length_max: 4096,
        webfile_dc_id: this_dc,
        suggested_lang_code: None,
        lang_pack_version: None,
        base_lang_pack_version: None,
        reactions_default: None,
        autologin_token: None,
    }
    .into()
}

pub fn password_algo(salt1: &[u8], salt2: &[u8]) -> tl::enums::PasswordKdfAlgo {
    tl::types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
        salt1: salt1.to_vec(),
        salt2: salt2.to_vec(),
        g: crate::srp::G,
        p: crate::srp::p_bytes(),
    }
    .into()
}

/// A stored photo or document as a message (or messages.uploadMedia) carries it.
pub fn message_media(f: &crate::world::FileRec) -> tl::enums::MessageMedia {
    if f.photo {
        return tl::types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(photo(f)),
            ttl_seconds: None,
            video: None,
        }
        .into();
    }
    tl::types::MessageMediaDocument {
        nopremium: false,
        spoiler: false,
        video: f.kind == "video",
        round: false,
        voice: f.kind == "voice",
        document: Some(document(f)),
        alt_documents: None,
        video_cover: None,
        video_timestamp: None,
        ttl_seconds: None,
    }
    .into()
}

pub fn photo(f: &crate::world::FileRec) -> tl::enums::Photo {
    tl::types::Photo {
        has_stickers: false,
        id: f.id,
        access_hash: f.access_hash,
        file_reference: f.file_reference.clone(),
        date: f.date,
        // testdc keeps the upload as it came: one size, the original.
        sizes: vec![tl::types::PhotoSize {
            r#type: "y".into(),
            w: 0,
            h: 0,
            size: i32::try_from(f.size).unwrap_or(i32::MAX),
        }
        .into()],
        video_sizes: None,
        dc_id: f.dc_id,
    }
    .into()
}

pub fn document(f: &crate::world::FileRec) -> tl::enums::Document {
    let mut attributes: Vec<tl::enums::DocumentAttribute> =
        vec![tl::types::DocumentAttributeFilename {
            file_name: f.file_name.clone(),
        }
        .into()];
    match f.kind.as_str() {
        "video" => attributes.push(
            tl::types::DocumentAttributeVideo {
                round_message: false,
                supports_streaming: true,
                nosound: false,
                duration: 0.0,
                w: 0,
                h: 0,
                preload_prefix_size: None,
                video_start_ts: None,
                video_codec: None,
            }
            .into(),
        ),
        "audio" | "voice" => attributes.push(
            tl::types::DocumentAttributeAudio {
                voice: f.kind == "voice",
                duration: 0,
                title: None,
                performer: None,
                waveform: None,
            }
            .into(),
        ),
        "animation" => attributes.push(tl::types::DocumentAttributeAnimated {}.into()),
        _ => {}
    }
    tl::types::Document {
        id: f.id,
        access_hash: f.access_hash,
        file_reference: f.file_reference.clone(),
        date: f.date,
        mime_type: f.mime.clone(),
        size: f.size,
        thumbs: None,
        video_thumbs: None,
        dc_id: f.dc_id,
        attributes,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use grammers_tl_types::{Deserializable, Serializable};

    #[test]
    fn built_values_roundtrip() {
        let m = message(MessageView {
            id: 1,
            out: true,
            from: None,
            peer: tl::types::PeerChannel { channel_id: 5 }.into(),
            date: 1,
            text: "x",
            post: true,
            entities: None,
            edit_date: None,
            pinned: false,
            media: None,
            grouped_id: None,
        });
        assert_eq!(tl::enums::Message::from_bytes(&m.to_bytes()).unwrap(), m);
        let file = crate::world::FileRec {
            id: 7,
            access_hash: 8,
            file_reference: vec![1, 2, 3],
            photo: false,
            sha256: "00".into(),
            size: 5_000_000_000,
            mime: "video/mp4".into(),
            file_name: "v.mp4".into(),
            kind: "video".into(),
            date: 1,
            owner: 1,
            dc_id: 2,
        };
        for media in [
            message_media(&file),
            message_media(&crate::world::FileRec {
                photo: true,
                ..file.clone()
            }),
        ] {
            assert_eq!(
                tl::enums::MessageMedia::from_bytes(&media.to_bytes()).unwrap(),
                media
            );
        }
        let c = channel(ChannelView {
            id: 5,
            access_hash: 9,
            title: "t",
            username: None,
            broadcast: true,
            creator: true,
            date: 1,
            admin_rights: None,
            left: false,
            participants: 1,
        });
        assert_eq!(tl::enums::Chat::from_bytes(&c.to_bytes()).unwrap(), c);
    }
}
