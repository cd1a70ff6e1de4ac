//! Socket.IO v5 server.

pub mod packet;

pub use packet::{Data, DecodeError, Decoder, Packet, PacketType};
