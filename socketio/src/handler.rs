//! Typed handlers: closures and functions whose arguments are [extractors](crate::extract).
//!
//! A typed handler is any `Fn(A1, …, An)` (synchronous: runs to completion when the event is
//! dispatched) or `Fn(A1, …, An) -> impl Future<Output = ()>` (asynchronous), `Send + Sync +
//! 'static`, with up to 8 arguments, each an extractor: [`FromEvent`] for
//! [`Socket::on_typed`](crate::Socket::on_typed), [`FromConnect`] for
//! [`Namespace::on_connection_typed`](crate::Namespace::on_connection_typed). Closure
//! arguments need their types written out (`|socket: Socket, Data(msg): Data<Msg>|`): they
//! say what to extract.
//!
//! **Dispatch.** A typed handler is wrapped, once, into the same boxed handler an untyped one
//! is (`Arc<dyn Fn(Socket, Event) -> BoxFuture>`), so an event costs one map lookup and one
//! dynamic call as before; the wrapper runs the extractors in argument order and then calls
//! the handler. A synchronous handler returns no future to box (its job completes inline, no
//! allocation); an asynchronous one has its future boxed as an untyped handler's is.
//! Registering typed handlers changes nothing for untyped ones.
//!
//! ```no_run
//! use socketio::extract::{AckSender, Data};
//! use socketio::Socket;
//!
//! // A plain function works as well as a closure.
//! fn on_add(Data((a, b)): Data<(i64, i64)>, ack: AckSender) {
//!     ack.send(serde_json::json!(a + b));
//! }
//!
//! # fn f(socket: Socket) {
//! socket.on_typed("add", on_add);
//! socket.on_typed("slow-add", |Data((a, b)): Data<(i64, i64)>, ack: AckSender| async move {
//!     tokio::task::yield_now().await;
//!     ack.send(serde_json::json!(a + b));
//! });
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::extract::{EventParts, ExtractError, FromConnect, FromEvent};
use crate::namespace::BoxFut as BoxFuture;
use crate::socket::{Event, Socket};

/// Markers that tell the synchronous and asynchronous implementations apart.
mod marker {
    /// A handler returning `()`.
    pub struct Sync;
    /// A handler returning a future.
    pub struct Async;
}

/// An event handler whose arguments are extracted: see the [module](self). `M` is inferred.
///
/// ```
/// use socketio::extract::{AckSender, Data};
/// use socketio::handler::EventHandler;
///
/// fn check<M>(_: impl EventHandler<M>) {}
/// check(|| {});
/// check(|Data(n): Data<u8>, ack: AckSender| ack.send(serde_json::json!(n)));
/// check(|ack: AckSender| async move { ack.send("later") });
/// ```
pub trait EventHandler<M>: Send + Sync + 'static {
    /// Extracts the arguments and calls the handler; the future is what is left to run.
    #[doc(hidden)]
    fn call(&self, parts: &mut EventParts) -> Result<BoxFuture, ExtractError>;
}

/// A connection handler whose arguments are extracted: see the [module](self). `M` is
/// inferred.
///
/// ```
/// use socketio::extract::Data;
/// use socketio::handler::ConnectHandler;
/// use socketio::Socket;
///
/// fn check<M>(_: impl ConnectHandler<M>) {}
/// check(|socket: Socket| socket.join("lobby"));
/// check(|Data(auth): Data<serde_json::Value>| async move { println!("{auth}") });
/// ```
pub trait ConnectHandler<M>: Send + Sync + 'static {
    /// Extracts the arguments; the handler runs when the future is first polled (after the
    /// CONNECT reply went out).
    #[doc(hidden)]
    fn prepare(self: Arc<Self>, socket: &Socket) -> Result<BoxFuture, ExtractError>;
}

/// Completes at once; zero-sized, so boxing it allocates nothing.
struct Done;

impl Future for Done {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

macro_rules! handlers {
    ($($A:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, $($A,)*> EventHandler<(marker::Sync, $($A,)*)> for F
        where
            F: Fn($($A),*) + Send + Sync + 'static,
            $($A: FromEvent,)*
        {
            fn call(&self, parts: &mut EventParts) -> Result<BoxFuture, ExtractError> {
                $(let $A = $A::from_event(parts)?;)*
                self($($A),*);
                Ok(Box::pin(Done))
            }
        }

        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, $($A,)*> EventHandler<(marker::Async, $($A,)*)> for F
        where
            F: Fn($($A),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($A: FromEvent,)*
        {
            fn call(&self, parts: &mut EventParts) -> Result<BoxFuture, ExtractError> {
                $(let $A = $A::from_event(parts)?;)*
                Ok(Box::pin(self($($A),*)))
            }
        }

        #[allow(non_snake_case, unused_variables)]
        impl<F, $($A,)*> ConnectHandler<(marker::Sync, $($A,)*)> for F
        where
            F: Fn($($A),*) + Send + Sync + 'static,
            $($A: FromConnect + Send + 'static,)*
        {
            fn prepare(self: Arc<Self>, socket: &Socket) -> Result<BoxFuture, ExtractError> {
                $(let $A = $A::from_connect(socket)?;)*
                Ok(Box::pin(async move { self($($A),*) }))
            }
        }

        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, $($A,)*> ConnectHandler<(marker::Async, $($A,)*)> for F
        where
            F: Fn($($A),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($A: FromConnect + Send + 'static,)*
        {
            fn prepare(self: Arc<Self>, socket: &Socket) -> Result<BoxFuture, ExtractError> {
                $(let $A = $A::from_connect(socket)?;)*
                Ok(Box::pin(async move { self($($A),*).await }))
            }
        }
    };
}

handlers!();
handlers!(A1);
handlers!(A1, A2);
handlers!(A1, A2, A3);
handlers!(A1, A2, A3, A4);
handlers!(A1, A2, A3, A4, A5);
handlers!(A1, A2, A3, A4, A5, A6);
handlers!(A1, A2, A3, A4, A5, A6, A7);
handlers!(A1, A2, A3, A4, A5, A6, A7, A8);

/// The boxed handler a socket keeps: the same shape as an untyped one.
pub(crate) type BoxedEventHandler = Arc<dyn Fn(Socket, Event) -> BoxFuture + Send + Sync>;

/// What a namespace keeps of a typed connection handler.
pub(crate) type BoxedConnectHandler =
    Arc<dyn Fn(&Socket) -> Result<BoxFuture, ExtractError> + Send + Sync>;

pub(crate) fn boxed_event<H, M>(handler: H) -> BoxedEventHandler
where
    H: EventHandler<M>,
{
    Arc::new(move |socket, event| {
        let mut parts = EventParts::new(socket, event);
        match handler.call(&mut parts) {
            Ok(job) => job,
            Err(err) => {
                parts.reject(err);
                Box::pin(Done)
            }
        }
    })
}

pub(crate) fn boxed_connect<H, M>(handler: H) -> BoxedConnectHandler
where
    H: ConnectHandler<M>,
{
    let handler = Arc::new(handler);
    Arc::new(move |socket| handler.clone().prepare(socket))
}
