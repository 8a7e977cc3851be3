//! The ABI declared once: [`abi_table!`](crate::abi_table) takes the table of commands (id,
//! name, arguments, bulk input and output, reply type, request and response caps) and derives
//! the command ids, the request type and its codec, the reply decoding per command, the typed
//! client ([`Client`](super::Client)) and the TA's dispatch ([`Handler`](super::Handler),
//! [`dispatch`](super::dispatch)). [`abi_replies!`](crate::abi_replies) does the same for the
//! reply bodies.

/// `Some(data)` when the command takes bulk input, else `None`.
#[doc(hidden)]
#[macro_export]
macro_rules! __abi_opt {
    () => {
        None
    };
    ($data:ident) => {
        Some($data)
    };
}

/// Whether an optional table element is present.
#[doc(hidden)]
#[macro_export]
macro_rules! __abi_present {
    () => {
        false
    };
    ($x:ident) => {
        true
    };
}

/// The client's return type: the reply body, and the bulk output for commands with one.
#[doc(hidden)]
#[macro_export]
macro_rules! __abi_ret_ty {
    ($ty:ty) => { $ty };
    ($ty:ty, $out:ident) => { ($ty, alloc::vec::Vec<u8>) };
}

/// The client's return value (see `__abi_ret_ty`).
#[doc(hidden)]
#[macro_export]
macro_rules! __abi_ret {
    ($v:ident, $data:ident) => {
        $v
    };
    ($v:ident, $data:ident, $out:ident) => {
        ($v, $data)
    };
}

/// Declares the reply bodies: `Variant(Type as Codec)`, plus `Done` (no body, null).
#[macro_export]
macro_rules! abi_replies {
    ( $( $(#[$doc:meta])* $variant:ident($ty:ty as $codec:ty) ),* $(,)? ) => {
        /// A successful response body.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Reply {
            $( $(#[$doc])* $variant($ty), )*
            /// Commands without a body.
            Done,
        }

        impl Reply {
            /// Appends the body.
            pub fn write(&self, w: &mut $crate::cbor::Writer) {
                match self {
                    $( Reply::$variant(v) => <$codec as $crate::codec::Codec<$ty>>::write(v, w), )*
                    Reply::Done => {
                        w.null();
                    }
                }
            }
        }

        $(
            impl ReplyBody for $ty {
                fn into_reply(self) -> Reply {
                    Reply::$variant(self)
                }
                fn from_reply(reply: Reply) -> Option<Self> {
                    match reply {
                        Reply::$variant(v) => Some(v),
                        _ => None,
                    }
                }
                fn read_reply(r: &mut $crate::cbor::Reader<'_>) -> $crate::error::Result<Reply> {
                    <$codec as $crate::codec::Codec<$ty>>::read(r).map(Reply::$variant)
                }
            }
        )*

        impl ReplyBody for () {
            fn into_reply(self) -> Reply {
                Reply::Done
            }
            fn from_reply(reply: Reply) -> Option<Self> {
                match reply {
                    Reply::Done => Some(()),
                    _ => None,
                }
            }
            fn read_reply(r: &mut $crate::cbor::Reader<'_>) -> $crate::error::Result<Reply> {
                r.null().map(|()| Reply::Done)
            }
        }
    };
}

/// Declares the commands; see the module documentation.
#[macro_export]
macro_rules! abi_table {
    ( $(
        $(#[$doc:meta])*
        $variant:ident = $id:literal, $name:literal, fn $method:ident
            $({ $( $(#[$fdoc:meta])* $field:ident : $fty:ty $(as $fcodec:ty)? ),* $(,)? })?
            $(( $tfield:ident : $tty:ty as $tcodec:ty ))?
            $([in $din:ident])?
            $([out $dout:ident])?
            -> $rty:ty,
            request_cap: $cap:expr, response_cap: $rcap:expr;
    )* ) => {
        /// A command of the ABI (the GlobalPlatform command id).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum CommandId {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl CommandId {
            /// Every command.
            pub const ALL: [CommandId; [$($id),*].len()] = [$(CommandId::$variant),*];

            /// From the GlobalPlatform command id.
            pub fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $( $id => Some(CommandId::$variant), )*
                    _ => None,
                }
            }

            /// Upper-case name as in DESIGN.md.
            pub fn name(self) -> &'static str {
                match self {
                    $( CommandId::$variant => $name, )*
                }
            }

            /// Whether the command takes bulk input in parameter 2.
            pub fn data_in(self) -> bool {
                match self {
                    $( CommandId::$variant => $crate::__abi_present!($($din)?), )*
                }
            }

            /// Whether the command writes bulk output to parameter 3.
            pub fn data_out(self) -> bool {
                match self {
                    $( CommandId::$variant => $crate::__abi_present!($($dout)?), )*
                }
            }

            /// Largest request (parameter 0) the TA copies for this command; anything larger
            /// is refused before it is copied or parsed (TEE_ERROR_EXCESS_DATA).
            pub fn max_request(self) -> usize {
                match self {
                    $( CommandId::$variant => $cap, )*
                }
            }

            /// The response buffer (parameter 1) a client provides for this command.
            pub fn response_capacity(self) -> usize {
                match self {
                    $( CommandId::$variant => $rcap, )*
                }
            }

            /// How many elements its request array has: the version and the arguments.
            fn request_items(self) -> usize {
                match self {
                    $( CommandId::$variant => 1
                        $($( + <$crate::wire_codec!($fty $(, $fcodec)?) as $crate::codec::Codec<$fty>>::ITEMS )*)?
                        $( + <$tcodec as $crate::codec::Codec<$tty>>::ITEMS )?, )*
                }
            }
        }

        /// A request; the command id travels beside it.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request {
            $(
                $(#[$doc])*
                $variant $({ $( $(#[$fdoc])* $field: $fty, )* })? $(($tty))?,
            )*
        }

        impl Request {
            /// The command this request belongs to.
            pub fn command(&self) -> CommandId {
                match self {
                    $( Request::$variant { .. } => CommandId::$variant, )*
                }
            }

            /// Encodes `[ABI_VERSION, args...]`.
            pub fn encode(&self) -> alloc::vec::Vec<u8> {
                let mut w = $crate::cbor::Writer::new();
                w.array(self.command().request_items()).u64(ABI_VERSION.into());
                match self {
                    $(
                        Request::$variant $({ $($field),* })? $(($tfield))? => {
                            $($( <$crate::wire_codec!($fty $(, $fcodec)?) as $crate::codec::Codec<$fty>>::write($field, &mut w); )*)?
                            $( <$tcodec as $crate::codec::Codec<$tty>>::write($tfield, &mut w); )?
                        }
                    )*
                }
                w.into_bytes()
            }

            /// Decodes the request of `command`; refuses another ABI version with a clear
            /// message.
            pub fn decode(command: CommandId, bytes: &[u8]) -> $crate::error::Result<Self> {
                $crate::cbor::Reader::decode_exact(bytes, "ABI request", |r| {
                    let n = r.array()?;
                    if n == 0 {
                        return Err(missing("ABI request", "abi-version"));
                    }
                    check_version(r.u64()?, "host")?;
                    if n != command.request_items() as u64 {
                        return Err($crate::error::Error::InvalidValue {
                            context: "ABI request",
                            element: command.name(),
                            reason: "wrong number of arguments",
                        });
                    }
                    Ok(match command {
                        $(
                            CommandId::$variant => Request::$variant
                                $({ $( $field: <$crate::wire_codec!($fty $(, $fcodec)?) as $crate::codec::Codec<$fty>>::read(r)?, )* })?
                                $(( <$tcodec as $crate::codec::Codec<$tty>>::read(r)? ))?,
                        )*
                    })
                })
            }
        }

        /// Reads the reply body of `command`.
        fn read_reply(command: CommandId, r: &mut $crate::cbor::Reader<'_>) -> $crate::error::Result<Reply> {
            match command {
                $( CommandId::$variant => <$rty as ReplyBody>::read_reply(r), )*
            }
        }

        /// The typed client: one method per command, over [`Client::call`].
        pub trait Client {
            /// Why a call failed.
            type Error;

            /// Sends `request` (with its bulk input) and returns the decoded reply and the bulk
            /// output; a rejection is an error.
            fn call(
                &mut self,
                request: &Request,
                data_in: Option<&[u8]>,
            ) -> core::result::Result<(Reply, alloc::vec::Vec<u8>), Self::Error>;

            /// The error for a reply that does not belong to `command`.
            fn unexpected(command: CommandId) -> Self::Error;

            $(
                $(#[$doc])*
                fn $method(
                    &mut self
                    $($(, $field: $fty)*)?
                    $(, $tfield: $tty)?
                    $(, $din: &[u8])?
                ) -> core::result::Result<$crate::__abi_ret_ty!($rty $(, $dout)?), Self::Error> {
                    let request = Request::$variant $({ $($field),* })? $(($tfield))?;
                    let (reply, data) = self.call(&request, $crate::__abi_opt!($($din)?))?;
                    let _ = &data;
                    match <$rty as ReplyBody>::from_reply(reply) {
                        Some(body) => Ok($crate::__abi_ret!(body, data $(, $dout)?)),
                        None => Err(Self::unexpected(CommandId::$variant)),
                    }
                }
            )*
        }

        /// The TA's side: one method per command, called by [`dispatch`] with the request's
        /// arguments; bulk input and output travel in the context.
        pub trait Handler {
            /// What one invoke carries besides the request (session, bulk data, capacities).
            type Context;
            /// Why a command was refused.
            type Error;

            $(
                $(#[$doc])*
                fn $method(
                    &mut self,
                    cx: &mut Self::Context
                    $($(, $field: $fty)*)?
                    $(, $tfield: $tty)?
                ) -> core::result::Result<$rty, Self::Error>;
            )*
        }

        /// Runs `request` on `handler`.
        pub fn dispatch<H: Handler>(
            handler: &mut H,
            cx: &mut H::Context,
            request: Request,
        ) -> core::result::Result<Reply, H::Error> {
            match request {
                $(
                    Request::$variant $({ $($field),* })? $(($tfield))? => handler
                        .$method(cx $($(, $field)*)? $(, $tfield)?)
                        .map(ReplyBody::into_reply),
                )*
            }
        }
    };
}
