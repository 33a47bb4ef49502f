//! The words the user names a model enum by (`--provider s3`, `--status in-progress`): one word
//! per variant, parsed and listed here so that every front accepts the same spellings. A front
//! lists [`KEYWORDS`](crate::model::Provider::KEYWORDS) as the accepted values and parses with
//! `FromStr`.

/// A word that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what} (one of: {})", .expected.join(", "))]
pub struct UnknownKeyword {
    what: &'static str,
    value: String,
    expected: &'static [&'static str],
}

/// `KEYWORDS`, `keyword()` and `FromStr` for enum `$ty`, one word per variant; `$what` names the
/// enum in errors.
macro_rules! keywords {
    ($ty:ty, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// The words naming the variants, in declaration order.
            pub const KEYWORDS: &'static [&'static str] = &[$($word),+];

            /// The word naming this variant.
            pub fn keyword(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::model::UnknownKeyword;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                match word {
                    $($word => Ok(Self::$variant),)+
                    _ => Err($crate::model::UnknownKeyword {
                        what: $what,
                        value: word.to_owned(),
                        expected: Self::KEYWORDS,
                    }),
                }
            }
        }
    };
}

keywords!(super::Role, "role", {
    Viewer => "viewer",
    Operator => "operator",
    WorkspaceAdmin => "workspace-admin",
    Admin => "admin",
});

keywords!(super::Phase, "phase", {
    Pending => "pending",
    InProgress => "in-progress",
    Completed => "completed",
    PartiallyFailed => "partially-failed",
    Failed => "failed",
});

keywords!(super::Provider, "provider", {
    S3 => "s3",
    Minio => "minio",
    Gcs => "gcs",
    Azure => "azure",
    Fs => "fs",
});

keywords!(super::ClusterResources, "cluster-resources choice", {
    Auto => "auto",
    Always => "always",
    Never => "never",
});

keywords!(super::ExistingPolicy, "existing-object policy", {
    Skip => "skip",
    Update => "update",
});

#[cfg(test)]
mod tests {
    use super::super::{ClusterResources, ExistingPolicy, Phase, Provider};

    #[test]
    fn every_keyword_parses_to_the_variant_that_prints_it() {
        for word in Phase::KEYWORDS {
            assert_eq!(word.parse::<Phase>().expect("parses").keyword(), *word);
        }
        for word in Provider::KEYWORDS {
            assert_eq!(word.parse::<Provider>().expect("parses").keyword(), *word);
        }
        for word in ClusterResources::KEYWORDS {
            assert_eq!(word.parse::<ClusterResources>().expect("parses").keyword(), *word);
        }
        for word in ExistingPolicy::KEYWORDS {
            assert_eq!(word.parse::<ExistingPolicy>().expect("parses").keyword(), *word);
        }
        assert_eq!("in-progress".parse::<Phase>(), Ok(Phase::InProgress));
        assert_eq!(Provider::Minio.to_string(), "minio");
    }

    #[test]
    fn other_words_are_refused_with_the_accepted_ones() {
        let err = "InProgress".parse::<Phase>().expect_err("not a keyword");
        assert_eq!(
            err.to_string(),
            "\"InProgress\" is not a phase (one of: pending, in-progress, completed, partially-failed, failed)"
        );
        assert!("S3".parse::<Provider>().is_err());
    }
}
