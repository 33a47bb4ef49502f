//! [`Denial`] to and from a gRPC status code: the one table both the hub and its clients use.

use tonic::Code;

use crate::model::{Denial, Refusal};

impl Denial {
    /// The status code that carries it.
    pub fn code(self) -> Code {
        match self {
            Self::Refused(Refusal::Invalid) => Code::InvalidArgument,
            Self::Refused(Refusal::NotFound) => Code::NotFound,
            Self::Refused(Refusal::Exists) => Code::AlreadyExists,
            Self::Refused(Refusal::Denied) => Code::PermissionDenied,
            Self::Refused(Refusal::Precondition) => Code::FailedPrecondition,
            Self::Refused(Refusal::Unauthenticated) => Code::Unauthenticated,
            Self::Unavailable => Code::Unavailable,
            Self::Failed => Code::Internal,
        }
    }

    /// What a status code says; `None` for `Ok`. Codes the hub does not send (a proxy's, a
    /// transport's) read as [`Denial::Failed`].
    pub fn of(code: Code) -> Option<Self> {
        Some(match code {
            Code::Ok => return None,
            Code::InvalidArgument => Self::Refused(Refusal::Invalid),
            Code::NotFound => Self::Refused(Refusal::NotFound),
            Code::AlreadyExists => Self::Refused(Refusal::Exists),
            Code::PermissionDenied => Self::Refused(Refusal::Denied),
            Code::FailedPrecondition => Self::Refused(Refusal::Precondition),
            Code::Unauthenticated => Self::Refused(Refusal::Unauthenticated),
            Code::Unavailable => Self::Unavailable,
            _ => Self::Failed,
        })
    }

    /// A status saying `message` for this denial.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denial_reads_back_from_its_code() {
        let all = [
            Denial::Refused(Refusal::Invalid),
            Denial::Refused(Refusal::NotFound),
            Denial::Refused(Refusal::Exists),
            Denial::Refused(Refusal::Denied),
            Denial::Refused(Refusal::Precondition),
            Denial::Refused(Refusal::Unauthenticated),
            Denial::Unavailable,
            Denial::Failed,
        ];
        for denial in all {
            assert_eq!(Denial::of(denial.code()), Some(denial));
        }
        assert_eq!(Denial::of(Code::Ok), None);
        assert_eq!(Denial::of(Code::DataLoss), Some(Denial::Failed));
    }
}
