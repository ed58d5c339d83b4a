// Package broker runs phix's message broker: nats-server embedded in the
// process, with JetStream storing sealed messages on disk.
//
// The broker never sees plaintext. It stores and routes envelopes that
// producers sealed, and its whole job is to make sure each machine can
// publish only the flows its policy gives it and read only what is
// addressed to it.
//
// # Transport and identity
//
// Every network client must speak TLS 1.3 and present a client certificate
// that chains to [Config].TLS.ClientCAs; plaintext and TLS 1.2 connections
// are refused. The client port starts every connection with the TLS
// handshake and sends nothing before it, not even the NATS INFO line, so
// clients must use nats.TLSHandshakeFirst: [ClientOptions] returns
// everything a machine's connection needs. There are no passwords, tokens
// or anonymous users. A certificate with subject exactly CN=<machine>,O=phix
// and no SANs maps to the nats user "CN=<machine>,O=phix"; a certificate
// for a machine the policy does not list, or has revoked, is refused.
// Certificates are read through [Config].TLS at each handshake, so renewed
// certificates take effect without a restart.
//
// # Policy
//
// The broker enforces a policy.Policy ([Config].Policy): users, subject
// permissions, inbox consumers, automatic logoff and stream retention are
// all derived from it by package policy. [Broker.SetPolicy] applies a new
// policy to the running server: live sessions keep going under their new
// permissions, and sessions of machines the new policy revokes or drops
// are closed at once ([Broker.Revoke] does this for one machine).
// [Broker.Enforced] reports what is enforced, for drift checks.
//
// A machine idle for longer than the policy's sessions.idle_timeout
// (no publish, pull or ack, no delivery) is disconnected, and the event is
// logged with its reason; clients using [ClientOptions] reconnect, with a
// new handshake and authorization, when they next work.
//
// # Streams and consumers
//
// Start creates or updates, on every start and policy change:
//   - stream PHIX_MSGS on phix.msg.*.*.*, file storage, limits retention
//     with the policy's retention.messages as maximum age, duplicate
//     window [Config].DuplicateWindow, message size limit
//     [Config].MaxPayload, deletes denied;
//   - stream PHIX_QUARANTINE on phix.quarantine.>, file storage, maximum
//     age retention.quarantine;
//   - for each machine M that receives a flow, durable pull consumer
//     inbox-M on PHIX_MSGS whose filter lists exactly the subjects of the
//     flows addressed to M, explicit acks, [InboxAckWait] and unlimited
//     deliveries.
//
// They are managed through an in-process connection that authenticates
// with an nkey generated in memory at [New] and permitted only for
// in-process connections, so no administrative credential exists on disk
// or on the network.
//
// # Encryption at rest
//
// The JetStream store is encrypted by nats-server with AES-256-GCM under
// per-stream keys derived from the key in [Config].StoreKeyFile (0600,
// created on first start, never in any configuration), underneath the
// sealed payloads.
//
// # Monitoring
//
// With [Config].MonitorPort set, an HTTPS endpoint with the same TLS 1.3
// and client-certificate rules serves /healthz, /readyz, /v1/enforced
// (auditors only) and whatever [Config].Monitor handles.
//
// # Permissions
//
// See policy.Policy.BrokerUsers for the subjects each machine may use.
// Every list is an allow list (an empty one denies everything), so
// everything else is denied, including stream and consumer management,
// message gets (except for auditors, who may read the streams by
// sequence), account info, other machines' subjects, consumers and reply
// inboxes. Each machine may subscribe only on _INBOX.<machine>.>.
//
// [Config].Machines is the deprecated policy-less mode of the first
// version: every listed machine may publish phix.msg.<machine>.*.* and
// read phix.msg.*.<machine>.*, with no automatic logoff.
package broker
