//! `auth` and `refresh`: who the connection is, and for how long.

use chorus_protocol::{ErrorCode, RoomName, ServerEvent, close, commands};

use super::{Access, Authed, Closing, Handled, REFUSED_TOKEN, Refusal, Session, instant_of};
use crate::{auth::AuthError, metrics::CloseReason};

impl Session {
    pub(super) async fn authenticate(
        &mut self,
        auth: commands::Auth,
        reference: Option<&str>,
    ) -> Handled {
        if self.authed.is_some() {
            return Err(Refusal::new(
                ErrorCode::AlreadyAuthenticated,
                "already authenticated; use refresh to replace the token",
            ));
        }
        let identity = self.chat.verify(&auth.token).map_err(|error| {
            let (code, closing) = match error {
                AuthError::Expired => (
                    ErrorCode::TokenExpired,
                    Closing {
                        code: close::TOKEN_EXPIRED,
                        label: CloseReason::TokenExpired,
                        ..REFUSED_TOKEN
                    },
                ),
                AuthError::Revoked => (
                    ErrorCode::TokenRevoked,
                    Closing {
                        code: close::TOKEN_REVOKED,
                        reason: "token revoked",
                        ..REFUSED_TOKEN
                    },
                ),
                _ => (ErrorCode::InvalidToken, REFUSED_TOKEN),
            };
            Refusal::new(code, error.to_string()).then_close(closing)
        })?;
        let Some(lease) = self.chat.users().acquire(&identity.user.id) else {
            self.chat.metrics().refused("too_many_connections");
            let message = format!(
                "this user already has {} connections to this node",
                self.chat.config().max_connections_per_user
            );
            return Err(
                Refusal::new(ErrorCode::TooManyConnections, message).then_close(Closing {
                    code: close::TOO_MANY_CONNECTIONS,
                    reason: "too many connections for this user",
                    label: CloseReason::TooManyConnections,
                }),
            );
        };
        self.reply(&ServerEvent::Authenticated {
            user: &identity.user,
            token_expires_at: identity.expires_at,
            reference,
        });
        tracing::Span::current().record("user", identity.user.id.as_str());
        self.deadline = instant_of(identity.expires_at);
        self.authed = Some(Authed { identity, lease });
        self.enter_personal().await;
        self.user_event("user.connected").await;
        Ok(())
    }

    /// Joins this connection to its user's own channel (once, after authentication).
    pub(super) async fn enter_personal(&mut self) {
        if let Some(authed) = &self.authed {
            let (user, grants) = (&authed.identity.user.id, &authed.identity.grants);
            self.memberships.enter_personal(user, grants.clone()).await;
        }
    }

    pub(super) fn refresh(
        &mut self,
        refresh: commands::Refresh,
        reference: Option<&str>,
    ) -> Handled {
        let identity = self.chat.verify(&refresh.token).map_err(|error| {
            let code = match error {
                AuthError::Expired => ErrorCode::TokenExpired,
                AuthError::Revoked => ErrorCode::TokenRevoked,
                _ => ErrorCode::InvalidToken,
            };
            Refusal::new(code, error.to_string())
        })?;
        let authed = self.authed.as_mut().expect("refresh needs authentication");
        if identity.user.id != authed.identity.user.id {
            return Err(Refusal::new(
                ErrorCode::InvalidToken,
                "the new token is for another user",
            ));
        }
        self.deadline = instant_of(identity.expires_at);
        authed.identity = identity;
        let (user, grants) = (&authed.identity.user, authed.identity.grants.clone());
        self.memberships.update_grants(&user.id, grants);
        // The new claims may take rooms away: leave those, saying why.
        let lost: Vec<RoomName> = self
            .memberships
            .rooms()
            .filter(|room| self.access(room) == Access::Denied)
            .cloned()
            .collect();
        let user = self.user().clone();
        for room in lost {
            self.memberships.leave(&room, &user);
            self.reply(&ServerEvent::Left {
                room: &room,
                reference: None,
                reason: Some("forbidden"),
            });
        }
        let expires_at = self.authed.as_ref().map_or(0, |a| a.identity.expires_at);
        self.reply(&ServerEvent::Refreshed {
            token_expires_at: expires_at,
            reference,
        });
        Ok(())
    }
}
