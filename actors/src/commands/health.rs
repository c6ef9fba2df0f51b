//! The liveness probe (updates.getState: cheap, needs an authorization, touches the home DC).
//! The actor's own operation, started on connect, by the watchdog and by re-checks.

use grammers_tl_types as tl;
use tgfleet_persistence::{AccountUpdate, LogLevel};

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::effect::{Effect, Line};
use crate::state::State;

pub(crate) struct Health;

impl Handler for Health {
    type Reply = ();
    type Op = ();
    type Done = ();
    const NAME: &'static str = "health";
    const CLASS: Class = Class::Health;
    const IS_USE: bool = false;

    /// The executor runs one at a time.
    fn admit(self, _view: &View) -> Admission<(), ()> {
        Admission::Run(())
    }

    async fn run((): (), tg: Tg) -> Result<(), OpFailure> {
        tg.call(&tl::functions::updates::GetState {}).await?;
        Ok(())
    }

    fn on_done(view: &View, (): ()) -> Decided<()> {
        let effects = match view.state {
            State::Reconnecting { .. } | State::FloodWait { .. } => vec![Effect::Become {
                to: State::Active,
                update: AccountUpdate {
                    last_error: Some(None),
                    ..Default::default()
                },
                log: Line::new(LogLevel::Info, "reconnected", "Telegram answers again"),
            }],
            state if !state.is_live() && view.authorized => vec![Effect::Become {
                to: State::Active,
                update: AccountUpdate::default(),
                log: Line::new(
                    LogLevel::Info,
                    "session_resumed",
                    "authorized session resumed",
                ),
            }],
            _ => Vec::new(),
        };
        Decided {
            effects,
            answer: Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_view::{limits, row, view};

    #[test]
    fn an_answer_ends_reconnecting_and_flood_wait_and_changes_nothing_when_active() {
        let limits = limits();
        let row = row();
        for state in [
            State::Reconnecting {
                attempt: 2,
                cause: "timeout".into(),
            },
            State::FloodWait {
                until: chrono::Utc::now(),
            },
        ] {
            let decided = Health::on_done(&view(&state, &limits, &row), ());
            assert!(matches!(
                &decided.effects[..],
                [Effect::Become { to: State::Active, log, .. }] if log.event == "reconnected"
            ));
        }
        assert!(Health::on_done(&view(&State::Active, &limits, &row), ())
            .effects
            .is_empty());
    }
}
