//! The domain of `hitl`: proposals, the approval matrix, classification by action risk
//! and the evidence pack. No terminal code lives here; see `docs/architecture.md`.
//!
//! Time is always a parameter (`now`): nothing in this crate reads the clock.

/// Declares a closed vocabulary (action types, authorities, execution rules...): the enum,
/// its words as `ALL`, `as_str`, `FromStr`, `Display` and serialisation as the word.
#[macro_export]
macro_rules! words {
    ($(#[$meta:meta])* pub enum $name:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($word),+];

            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> ::std::result::Result<Self, ()> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    _ => Err(()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

pub mod approval;
pub mod audit;
pub mod classify;
pub mod decode;
pub mod diag;
pub mod error;
pub mod evidence;
pub mod lint;
pub mod matrix;
pub mod policy;
pub mod request;
pub mod scaffold;
pub mod signing;
pub mod test_clock;
pub mod text;
pub mod workflow;
pub mod workspace;
pub mod yaml;

pub use error::{Error, Result};
