//! auth.sendCode: the first step of a phone login. The pending login (phone, phone_code_hash)
//! is sealed into the session before the answer goes out.

use chrono::Utc;
use grammers_tl_types as tl;
use serde::Serialize;

use super::login::{self, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::AccountError;
use crate::session::PendingLogin;
use tgfleet_persistence::Phone;

#[derive(Debug, Clone)]
pub struct SendCode {
    pub phone: Phone,
}

/// How Telegram delivers the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeSent {
    pub code_type: String,
    pub timeout_s: Option<u32>,
}

impl Handler for SendCode {
    type Reply = CodeSent;
    type Op = Phone;
    type Done = Step;
    const NAME: &'static str = "send_code";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<Phone, CodeSent> {
        view.login_step_allowed().map(|()| self.phone).into()
    }

    async fn run(phone: Phone, tg: Tg) -> Result<Step, OpFailure> {
        let tg = &tg;
        let request = tl::functions::auth::SendCode {
            phone_number: phone.to_string(),
            api_id: tg.app.api_id,
            api_hash: tg.app.api_hash.clone(),
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
        };
        let sent = match login::call_migrating(tg, &request).await {
            Ok(sent) => sent,
            Err(f) => {
                return Err(match &f.cause {
                    Some(c) if c.is("PHONE_NUMBER_INVALID") => OpFailure {
                        error: AccountError::PhoneInvalid,
                        cause: f.cause,
                    },
                    _ => f,
                })
            }
        };
        use tl::enums::auth::SentCode;
        match sent {
            SentCode::Code(code) => {
                let code_type = code_type_name(&code.r#type).to_owned();
                let timeout_s = code.timeout.and_then(|t| u32::try_from(t).ok());
                tg.session
                    .set_pending_login(Some(PendingLogin::Code {
                        phone,
                        phone_code_hash: code.phone_code_hash,
                        code_type: code_type.clone(),
                        timeout_s,
                        sent_at: Utc::now(),
                    }))
                    .await?;
                Ok(Step::CodeSent {
                    code_type,
                    timeout_s,
                })
            }
            SentCode::Success(success) => match success.authorization {
                tl::enums::auth::Authorization::Authorization(auth) => {
                    login::complete_login(tg, auth).await
                }
                tl::enums::auth::Authorization::SignUpRequired(_) => {
                    Err(OpFailure::user(AccountError::PhoneNotRegistered))
                }
            },
            SentCode::PaymentRequired(_) => Err(OpFailure::user(AccountError::Telegram {
                code: 402,
                name: "PAYMENT_REQUIRED".into(),
            })),
        }
    }

    fn on_done(view: &View, step: Step) -> Decided<CodeSent> {
        let effects = login::step_effects(view, &step, "code");
        let answer = match step {
            Step::CodeSent {
                code_type,
                timeout_s,
            } => Ok(CodeSent {
                code_type,
                timeout_s,
            }),
            // Only with logout tokens, which tgfleet never sends: the login is finished anyway.
            _ => Err(AccountError::WrongState {
                state: tgfleet_persistence::AccountState::Active,
                expected: "a code to send (Telegram logged the account in without one)",
            }),
        };
        Decided { effects, answer }
    }
}

fn code_type_name(t: &tl::enums::auth::SentCodeType) -> &'static str {
    use tl::enums::auth::SentCodeType as T;
    match t {
        T::App(_) => "app",
        T::Sms(_) => "sms",
        T::Call(_) => "call",
        T::FlashCall(_) => "flash_call",
        T::MissedCall(_) => "missed_call",
        T::EmailCode(_) => "email_code",
        T::SetUpEmailRequired(_) => "set_up_email_required",
        T::FragmentSms(_) => "fragment_sms",
        T::FirebaseSms(_) => "firebase_sms",
        T::SmsWord(_) => "sms_word",
        T::SmsPhrase(_) => "sms_phrase",
    }
}
