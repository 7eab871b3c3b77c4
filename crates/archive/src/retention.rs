//! How long the archive keeps messages: rules by room pattern
//! (`--archive-retention`), applied by [`crate::Archive::expire`].

use std::time::Duration;

/// How long the archive keeps the messages of rooms matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    /// Room pattern: `*` any run of characters (`dm:*` the direct-message rooms).
    pub pattern: String,
    /// How long a message is kept after it was sent.
    pub keep: Duration,
}

impl RetentionRule {
    /// Rules from `pattern=duration` pairs separated by commas
    /// (`support.*=90d,*=2y`); the first rule matching a room applies.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
            .map(|rule| {
                let (pattern, keep) = rule
                    .split_once('=')
                    .ok_or_else(|| format!("{rule:?} is not pattern=duration"))?;
                let keep =
                    humantime::parse_duration(keep.trim()).map_err(|e| format!("{rule:?}: {e}"))?;
                let pattern = pattern.trim();
                if pattern.is_empty() || pattern.len() > 128 {
                    return Err(format!("{rule:?}: the pattern is 1-128 bytes"));
                }
                if keep < Duration::from_secs(3600) {
                    return Err(format!("{rule:?}: keep messages at least an hour"));
                }
                Ok(Self {
                    pattern: pattern.to_owned(),
                    keep,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_in_order_and_bad_ones_say_why() {
        let rules = RetentionRule::parse_list("support.*=90d, dm:*=1y ,*=2years").unwrap();
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(patterns, ["support.*", "dm:*", "*"]);
        assert_eq!(rules[0].keep, Duration::from_secs(90 * 24 * 3600));
        for bad in [
            "support.*",
            "=90d",
            "x=soon",
            "x=30m",
            &format!("{}=1d", "a".repeat(129)),
        ] {
            assert!(RetentionRule::parse_list(bad).is_err(), "{bad}");
        }
        assert!(RetentionRule::parse_list("").unwrap().is_empty());
    }
}
