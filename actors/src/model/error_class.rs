//! How an error is to be handled, decided where the error is made.

/// How a processing error is to be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed if tried again later.
    Transient,
    /// Will fail again, whatever is retried.
    Permanent,
    /// The process cannot go on correctly.
    Fatal,
}

impl ErrorClass {
    /// Its name, as a dead letter's `x-error-class` says it.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Fatal => "fatal",
        }
    }
}
