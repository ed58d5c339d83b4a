package keys

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors returned by the [Vault] provider and [VaultAdmin] besides the
// provider errors. Callers branch on them with [errors.Is].
var (
	// ErrDenied means Vault refused the request under the caller's policy:
	// for example wrapping for a machine outside the caller's flows.
	ErrDenied = errors.New("keys: vault denied the request")
	// ErrUnavailable means the key service could not be reached or did
	// not answer usefully (network, 5xx, sealed, rate limited, deadline).
	// The operation may succeed if retried later. [Vault.UnwrapKey]
	// failures of this kind match both ErrUnwrap and ErrUnavailable, so a
	// consumer can retry instead of quarantining the message.
	ErrUnavailable = errors.New("keys: key service unavailable")
)

// VaultCalls counts requests to Vault made by this package, labelled by
// operation (encrypt, decrypt, sign, read_key, login, renew, ...) and
// result (ok, denied, refused, unavailable). It is not registered: the
// service that owns the metrics registry registers it once.
var VaultCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "phix_vault_calls_total",
	Help: "Requests to Vault by the phix key provider, by operation and result.",
}, []string{"operation", "result"})

// vaultResult classifies the outcome of one Vault request.
type vaultResult string

const (
	vaultOK          vaultResult = "ok"
	vaultDenied      vaultResult = "denied"      // 403: policy or token
	vaultRefused     vaultResult = "refused"     // other 4xx: bad input
	vaultUnavailable vaultResult = "unavailable" // transport, 5xx, 429, ctx
)

func classifyVault(err error) vaultResult {
	if err == nil {
		return vaultOK
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		// Without an HTTP status: a transport failure or deadline, or a
		// response this package could not make sense of.
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.Canceled) ||
			errors.Is(err, context.DeadlineExceeded) {
			return vaultUnavailable
		}
		return vaultRefused
	}
	switch {
	case re.StatusCode == http.StatusForbidden:
		return vaultDenied
	case re.StatusCode == http.StatusTooManyRequests,
		re.StatusCode == http.StatusPreconditionFailed, // replication lag
		re.StatusCode >= 500:
		return vaultUnavailable
	}
	return vaultRefused
}

// countVault records one request in [VaultCalls] and returns err.
func countVault(op string, err error) error {
	VaultCalls.WithLabelValues(op, string(classifyVault(err))).Inc()
	return err
}

// vaultError turns an API error into one of ours. The API error text names
// the URL and Vault's message, never a token or a request body.
func vaultError(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, cerr := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, cerr) {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, cerr)
		}
	}
	switch classifyVault(err) {
	case vaultDenied:
		return fmt.Errorf("%w: %s", ErrDenied, op)
	case vaultUnavailable:
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, trimVaultError(err))
	}
	return fmt.Errorf("keys: vault %s: %v", op, trimVaultError(err))
}

// trimVaultError flattens the API client's multi-line error text.
func trimVaultError(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("status %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// vaultUnwrapError is [Vault.UnwrapKey]'s error when the key service was
// unavailable: it matches [ErrUnwrap] as every unwrap failure does, and
// also the cause, so callers can tell "retry later" from "not for you".
type vaultUnwrapError struct{ cause error }

func (e *vaultUnwrapError) Error() string {
	// Both messages start with the package name; say it once.
	return ErrUnwrap.Error() + ": " + strings.TrimPrefix(e.cause.Error(), "keys: ")
}

func (e *vaultUnwrapError) Unwrap() []error { return []error{ErrUnwrap, e.cause} }

// unwrapFailure maps any UnwrapKey failure to an error matching
// [ErrUnwrap]. Refusals by Vault (wrong key, tampered, denied, destroyed
// version) all become the bare sentinel, so no caller learns which check
// failed.
func unwrapFailure(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return &vaultUnwrapError{cause: err}
	}
	return ErrUnwrap
}
