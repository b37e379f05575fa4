//! Message levels, numeric like Django's so custom levels fit between.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How important a message is.
///
/// Levels are numbers, ordered `DEBUG (10) < INFO (20) < SUCCESS (25) < WARNING (30) <
/// ERROR (40)`, the same values as Django, so a custom level fits between two standard
/// ones. Each standard level has a tag string (`"success"`) that templates use as a CSS
/// class; custom levels have the tag `"custom"`.
///
/// In JSON a standard level is its tag string and a custom level its number.
///
/// ```
/// use messages_core::Level;
///
/// assert!(Level::DEBUG < Level::INFO && Level::WARNING < Level::ERROR);
/// assert_eq!(Level::SUCCESS.tag(), "success");
/// let notice = Level::custom(22);
/// assert!(Level::INFO < notice && notice < Level::SUCCESS);
/// assert_eq!(serde_json::to_string(&Level::SUCCESS).unwrap(), "\"success\"");
/// assert_eq!(serde_json::to_string(&notice).unwrap(), "22");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(u8);

impl Level {
    /// Development details, hidden by the default minimum level.
    pub const DEBUG: Level = Level(10);
    /// Information for the person.
    pub const INFO: Level = Level(20);
    /// An action succeeded.
    pub const SUCCESS: Level = Level(25);
    /// Something needs attention.
    pub const WARNING: Level = Level(30);
    /// An action failed.
    pub const ERROR: Level = Level(40);

    /// The standard levels, lowest first.
    ///
    /// ```
    /// use messages_core::Level;
    ///
    /// let tags: Vec<&str> = Level::STANDARD.iter().map(|l| l.tag()).collect();
    /// assert_eq!(tags, ["debug", "info", "success", "warning", "error"]);
    /// ```
    pub const STANDARD: [Level; 5] = [
        Level::DEBUG,
        Level::INFO,
        Level::SUCCESS,
        Level::WARNING,
        Level::ERROR,
    ];

    /// A level with its own number; the standard numbers give the standard levels.
    pub const fn custom(value: u8) -> Level {
        Level(value)
    }

    /// The level's number.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The tag string: `"debug"`, `"info"`, `"success"`, `"warning"`, `"error"`, or
    /// `"custom"` for any other number.
    pub const fn tag(self) -> &'static str {
        match self.0 {
            10 => "debug",
            20 => "info",
            25 => "success",
            30 => "warning",
            40 => "error",
            _ => "custom",
        }
    }

    /// The standard level for a tag string, if there is one.
    pub fn from_tag(tag: &str) -> Option<Level> {
        Level::STANDARD.into_iter().find(|l| l.tag() == tag)
    }

    const fn is_standard(self) -> bool {
        matches!(self.0, 10 | 20 | 25 | 30 | 40)
    }
}

impl Default for Level {
    fn default() -> Self {
        Level::INFO
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_standard() {
            f.write_str(self.tag())
        } else {
            write!(f, "Level({})", self.0)
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_standard() {
            f.write_str(self.tag())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_standard() {
            serializer.serialize_str(self.tag())
        } else {
            serializer.serialize_u8(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl serde::de::Visitor<'_> for LevelVisitor {
            type Value = Level;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a level tag string or a number from 0 to 255")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Level, E> {
                Level::from_tag(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Level, E> {
                u8::try_from(v)
                    .map(Level)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Level, E> {
                u8::try_from(v)
                    .map(Level)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(LevelVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_of_every_level() {
        for value in 0..=u8::MAX {
            let level = Level::custom(value);
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(
                serde_json::from_str::<Level>(&json).unwrap(),
                level,
                "{json}"
            );
        }
    }

    #[test]
    fn rejects_unknown_tags_and_out_of_range_numbers() {
        assert!(serde_json::from_str::<Level>("\"fatal\"").is_err());
        assert!(serde_json::from_str::<Level>("256").is_err());
        assert!(serde_json::from_str::<Level>("-1").is_err());
        assert!(serde_json::from_str::<Level>("2.5").is_err());
    }

    #[test]
    fn standard_order_and_tags() {
        let all = Level::STANDARD;
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let tags: Vec<_> = all.iter().map(|l| l.tag()).collect();
        assert_eq!(tags, ["debug", "info", "success", "warning", "error"]);
        assert_eq!(Level::custom(25), Level::SUCCESS);
        assert_eq!(Level::custom(26).tag(), "custom");
        assert_eq!(Level::default(), Level::INFO);
        assert_eq!(
            format!("{:?} {}", Level::custom(7), Level::custom(7)),
            "Level(7) 7"
        );
    }
}
