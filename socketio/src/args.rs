//! Event arguments: what handlers receive and what `emit` sends.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::packet::Data;

/// The arguments of an event or an acknowledgement: JSON values that may hold binary.
///
/// Build them from one value, a tuple of values, or a vector:
///
/// ```
/// use socketio::Args;
/// use serde_json::json;
/// let one = Args::from("hello");
/// let two = Args::from((json!({"a": 1}), bytes::Bytes::from_static(b"\x01")));
/// assert_eq!(one.len(), 1);
/// assert_eq!(two.len(), 2);
/// let none = Args::from(());
/// assert!(none.is_empty());
/// let typed = Args::serialize(&vec![1, 2, 3]).unwrap();
/// assert_eq!(typed.get::<Vec<u32>>(0).unwrap(), vec![1, 2, 3]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args(pub Vec<Data>);

/// An argument did not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    /// No argument at this position.
    #[error("missing argument {0}")]
    Missing(usize),
    /// The argument is binary where JSON was expected, or JSON where binary was expected.
    #[error("argument {0} has the wrong kind")]
    WrongKind(usize),
    /// The JSON does not deserialize into the requested type.
    #[error("argument {index}: {source}")]
    Invalid {
        /// Position of the argument.
        index: usize,
        /// What serde reported.
        source: serde_json::Error,
    },
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Args(Vec::new())
    }

    /// One argument serialized from any serde type.
    pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Args(vec![Data::Json(serde_json::to_value(value)?)]))
    }

    /// Appends an argument.
    pub fn push(&mut self, value: impl Into<Data>) {
        self.0.push(value.into());
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The argument at `index` as raw data.
    pub fn data(&self, index: usize) -> Option<&Data> {
        self.0.get(index)
    }

    /// The argument at `index`, deserialized. Binary-free arguments only.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Result<T, ArgError> {
        match self.0.get(index) {
            None => Err(ArgError::Missing(index)),
            Some(Data::Json(v)) => {
                T::deserialize(v).map_err(|source| ArgError::Invalid { index, source })
            }
            Some(other) => match other.clone().normalized() {
                Data::Json(v) => {
                    T::deserialize(&v).map_err(|source| ArgError::Invalid { index, source })
                }
                _ => Err(ArgError::WrongKind(index)),
            },
        }
    }

    /// The argument at `index` as JSON, if it holds no binary.
    pub fn json(&self, index: usize) -> Option<&Value> {
        match self.0.get(index) {
            Some(Data::Json(v)) => Some(v),
            _ => None,
        }
    }

    /// The argument at `index` if it is a binary buffer.
    pub fn binary(&self, index: usize) -> Option<&Bytes> {
        match self.0.get(index) {
            Some(Data::Binary(b)) => Some(b),
            _ => None,
        }
    }

    /// The arguments as one array value, preceded by `head` when given (the event name).
    pub(crate) fn into_array(self, head: Option<Value>) -> Data {
        let mut items = Vec::with_capacity(self.0.len() + 1);
        if let Some(head) = head {
            items.push(Data::Json(head));
        }
        let all_json = self.0.iter().all(|d| matches!(d, Data::Json(_)));
        items.extend(self.0);
        if all_json {
            Data::Json(Value::Array(
                items
                    .into_iter()
                    .map(|d| match d {
                        Data::Json(v) => v,
                        _ => Value::Null,
                    })
                    .collect(),
            ))
        } else {
            Data::Array(items)
        }
    }

    /// Splits a decoded array payload into its items.
    pub(crate) fn from_array(data: Data) -> Args {
        match data {
            Data::Json(Value::Array(items)) => Args(items.into_iter().map(Data::Json).collect()),
            Data::Array(items) => Args(items),
            other => Args(vec![other]),
        }
    }
}

impl IntoIterator for Args {
    type Item = Data;
    type IntoIter = std::vec::IntoIter<Data>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<()> for Args {
    fn from(_: ()) -> Self {
        Args::new()
    }
}

impl From<Vec<Data>> for Args {
    fn from(v: Vec<Data>) -> Self {
        Args(v)
    }
}

macro_rules! single {
    ($($t:ty),*) => {$(
        impl From<$t> for Args {
            fn from(v: $t) -> Self {
                Args(vec![Data::from(v)])
            }
        }
    )*};
}
single!(Data, Value, Bytes, &str, String);

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Into<Data>),+> From<($($name,)+)> for Args {
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> Self {
                Args(vec![$($name.into()),+])
            }
        }
    };
}
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
