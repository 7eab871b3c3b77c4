//! Who may join and post where: token grants, public rooms, direct-message rooms.

use chorus_protocol::RoomName;
use wildmatch::WildMatch;

/// Most patterns accepted in one token's `rooms.join` or `rooms.post`.
pub const MAX_PATTERNS: usize = 64;
/// Longest pattern accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 128;

/// What a user may do in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Neither join nor post.
    Denied,
    /// Join and read, not post (an announcement room, for instance).
    Read,
    /// Join, read and post.
    ReadWrite,
}

/// Room patterns: `*` matches any run of characters, everything else itself.
#[derive(Debug, Clone, Default)]
pub struct Patterns(Vec<WildMatch>);

impl Patterns {
    /// Parses a list of patterns, refusing too many or too long ones.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, &'static str> {
        if patterns.len() > MAX_PATTERNS {
            return Err("at most 64 room patterns");
        }
        patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                if p.is_empty() || p.len() > MAX_PATTERN_BYTES {
                    Err("room patterns must be 1-128 bytes")
                } else {
                    Ok(WildMatch::new(p))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether any pattern matches `room`.
    pub fn matches(&self, room: &str) -> bool {
        self.0.iter().any(|p| p.matches(room))
    }

    /// The patterns as written.
    pub fn sources(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(ToString::to_string)
    }
}

/// The rooms one token grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Rooms the user may join.
    join: Patterns,
    /// Rooms the user may join and post to.
    post: Patterns,
    /// Rooms where the user may edit and delete anyone's messages.
    moderate: Patterns,
}

impl Grants {
    /// The grants of a token's `rooms` claim: its `join`, `post` and
    /// `moderate` patterns.
    pub fn parse<S: AsRef<str>>(
        join: &[S],
        post: &[S],
        moderate: &[S],
    ) -> Result<Self, &'static str> {
        Ok(Self {
            join: Patterns::parse(join)?,
            post: Patterns::parse(post)?,
            moderate: Patterns::parse(moderate)?,
        })
    }
}

/// The node's room rules, the same for every user.
#[derive(Debug, Clone, Default)]
pub struct RoomPolicy {
    /// Rooms every authenticated user may join and post to.
    pub public: Patterns,
    /// Rooms every authenticated user may join; posting needs a `post` grant.
    pub read_only: Patterns,
}

impl RoomPolicy {
    /// What `user` holding `grants` may do in `room`.
    ///
    /// A direct-message room (`dm:<a>+<b>`) is open to its two members only: no
    /// pattern, not even `*`, opens it to anyone else.
    pub fn access(&self, user: &str, grants: &Grants, room: &RoomName) -> Access {
        if let Some((a, b)) = room.direct_members() {
            return if !user.is_empty() && (user == a || user == b) {
                Access::ReadWrite
            } else {
                Access::Denied
            };
        }
        let room = room.as_str();
        if grants.post.matches(room) || self.public.matches(room) {
            Access::ReadWrite
        } else if grants.join.matches(room) || self.read_only.matches(room) {
            Access::Read
        } else {
            Access::Denied
        }
    }

    /// Patterns of every room (other than direct-message rooms) `grants` let
    /// their holder read.
    pub fn readable(&self, grants: &Grants) -> Vec<String> {
        [&grants.join, &grants.post, &self.public, &self.read_only]
            .into_iter()
            .flat_map(Patterns::sources)
            .collect()
    }

    /// Whether `grants` let their holder edit and delete anyone's messages in
    /// `room` (never in a direct-message room: each edits only their own).
    pub fn may_moderate(&self, grants: &Grants, room: &RoomName) -> bool {
        room.direct_members().is_none() && grants.moderate.matches(room.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(join: &[&str], post: &[&str]) -> Grants {
        Grants::parse(join, post, &["team-42.*"]).unwrap()
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn patterns_grant_join_and_post_separately() {
        let policy = RoomPolicy::default();
        let g = grants(&["team-42.*", "news"], &["team-42.dev"]);
        assert_eq!(
            policy.access("u", &g, &room("team-42.dev")),
            Access::ReadWrite
        );
        assert_eq!(policy.access("u", &g, &room("team-42.all")), Access::Read);
        assert_eq!(policy.access("u", &g, &room("news")), Access::Read);
        assert_eq!(policy.access("u", &g, &room("team-43.dev")), Access::Denied);
        assert_eq!(policy.access("u", &g, &room("team-42")), Access::Denied);
    }

    #[test]
    fn public_and_read_only_rooms_apply_to_everyone() {
        let policy = RoomPolicy {
            public: Patterns::parse(&["lobby"]).unwrap(),
            read_only: Patterns::parse(&["announce.*"]).unwrap(),
        };
        let none = Grants::default();
        assert_eq!(policy.access("u", &none, &room("lobby")), Access::ReadWrite);
        assert_eq!(
            policy.access("u", &none, &room("announce.all")),
            Access::Read
        );
        let admin = grants(&[], &["announce.*"]);
        assert_eq!(
            policy.access("u", &admin, &room("announce.all")),
            Access::ReadWrite
        );
    }

    #[test]
    fn direct_rooms_admit_their_two_members_only() {
        let policy = RoomPolicy {
            public: Patterns::parse(&["*"]).unwrap(),
            ..RoomPolicy::default()
        };
        let everything = grants(&["*"], &["*"]);
        let dm = room("dm:alice+bob");
        assert_eq!(policy.access("alice", &everything, &dm), Access::ReadWrite);
        assert_eq!(
            policy.access("bob", &Grants::default(), &dm),
            Access::ReadWrite
        );
        assert_eq!(policy.access("carol", &everything, &dm), Access::Denied);
        assert_eq!(
            policy.access("bob", &everything, &room("dm:bob+alice")),
            Access::Denied
        );
    }

    #[test]
    fn moderation_is_granted_by_pattern_and_never_in_direct_rooms() {
        let policy = RoomPolicy::default();
        let g = grants(&[], &[]);
        assert!(policy.may_moderate(&g, &room("team-42.dev")));
        assert!(!policy.may_moderate(&g, &room("team-43.dev")));
        assert!(!policy.may_moderate(&Grants::default(), &room("team-42.dev")));
        let everything = Grants::parse(&[], &[], &["*"]).unwrap();
        assert!(!policy.may_moderate(&everything, &room("dm:alice+bob")));
    }

    #[test]
    fn refuses_too_many_patterns() {
        let many: Vec<String> = (0..65).map(|i| format!("r{i}")).collect();
        assert!(Patterns::parse(&many).is_err());
        assert!(Patterns::parse(&[""]).is_err());
    }
}
