// Package hl7 reads and acknowledges HL7 version 2 messages in the
// traditional "pipe" (ER7) encoding.
//
// # Guarantees
//
// A parsed [Message] keeps the exact bytes it came from ([Message.Bytes]),
// which is what phix stores and forwards, and [Message.Encode] rebuilds
// those bytes exactly from the parsed tree. Parsing never panics on
// input; it returns an [*Error] whose text never quotes the message, so
// errors can be logged and returned to the sender without leaking PHI.
//
// # Leniency
//
// Parsing follows the standard where a guess could corrupt data and
// repairs, with a [Warning], what is common and unambiguous:
//
//   - Delimiters are read from each message's MSH-1 and MSH-2, by
//     position, with 1 to 5 encoding characters.
//   - Segments end with CR (a CR LF pair counts as one terminator). A
//     message with no CR at all is split on LF; an LF inside a
//     CR-terminated message is data.
//   - Blank segments are skipped.
//   - Escape sequences are decoded after splitting, only when a value is
//     read; sequences that cannot be decoded are kept verbatim.
//
// [WithStrict] turns the repairs into errors.
//
// # Character sets
//
// MSH-18 selects the character set (HL7 table 0211: 8859/1 and the other
// ISO 8859 parts, UNICODE UTF-8, GB 18030-2000, BIG-5, KS X 1001, ISO
// IR87). Text read from a message is UTF-8. Bytes that are not valid in
// the declared set are an error, never replaced with U+FFFD.
//
// # Memory
//
// A Message holds its text once and finds fields, repetitions and
// components by scanning when they are read, so fields, repetitions and
// blank lines cost no memory beyond the text itself. Each segment costs
// about 50 bytes, so a hostile message made of 4-byte segments costs some
// 20 times its size; [WithMaxSize] bounds the total.
//
// # Reading values
//
// Values are addressed with [Location] paths such as "PID-3[2].5" and
// "OBX(2)-5". [Message.Get] returns decoded text, [Message.Raw] the text
// as sent, and [Message.State] tells an absent element from the HL7 null
// "" that asks a receiver to delete its stored value.
package hl7
