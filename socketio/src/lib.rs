//! Socket.IO v5 server.
