// Package mllp carries HL7 v2 messages over TCP with the Minimal Lower
// Layer Protocol (HL7 v2.5 Appendix C, release 1): each message is framed
// as 0x0B, message, 0x1C 0x0D.
//
// # Guarantees
//
// A [Server] acknowledges a message as accepted (AA, or CA in enhanced
// mode) only after its [Handler] returned nil; in phix the handler
// returns once JetStream stored every recipient's copy. Refused messages
// get AE or AR (CE or CR) with an ERR segment. Messages on one connection
// are handled and acknowledged in the order they arrived, including
// frames pipelined without waiting for acknowledgements.
//
// A [Client] sends one message at a time and returns only when the
// receiver acknowledged that message (matched by MSA-2), so a message
// can be marked delivered only once the downstream system has it.
//
// # Robustness
//
// Frames are reassembled across any split of the byte stream. Bytes
// outside frames (log lines, stray line feeds) are skipped and counted.
// Frames over the size limit are skipped without being buffered and
// refused with AR. Nothing is logged from a payload: only control IDs,
// sizes and reasons.
package mllp
