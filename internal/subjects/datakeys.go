package subjects

import "regexp"

// The wrapped-key registry is a JetStream key-value bucket. Its keys are
//
//	<sender>.<data key ID>.<reader>
//
// so that the broker can let a sender write only under its own name, and a
// reader fetch only the entries that end in its own name, with subject
// permissions alone. Each value is one data key wrapped for the reader.
// A destroyed data key leaves a record under <sender>.<data key ID>.
// followed by [DataKeyTombstone], which no machine name can equal.
const (
	// DataKeyBucket is the key-value bucket of wrapped data keys.
	DataKeyBucket = "PHIX_DATAKEYS"
	// DataKeyStream is the stream that holds [DataKeyBucket].
	DataKeyStream = "KV_" + DataKeyBucket
	// DataKeyPrefix starts the subject of every registry entry.
	DataKeyPrefix = "$KV." + DataKeyBucket
	// DataKeyTombstone is the last key token of a destroyed-key record.
	// The underscore keeps it apart from every machine name.
	DataKeyTombstone = "_destroyed"
)

// dataKeyIDRE is the shape of a data key ID that can be a registry key
// token. Keys made by [keys.NewDataKey] are 32 lowercase hex digits.
var dataKeyIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidDataKeyID reports whether id can be a registry key token.
func ValidDataKeyID(id string) bool { return dataKeyIDRE.MatchString(id) }

// DataKeyKey returns the registry key of the data key dataKeyID of sender
// wrapped for reader. The caller checks the three tokens.
func DataKeyKey(sender, dataKeyID, reader string) string {
	return sender + "." + dataKeyID + "." + reader
}

// DataKeySubject returns the subject a registry key is stored on.
func DataKeySubject(key string) string { return DataKeyPrefix + "." + key }

// DataKeyGet returns the JetStream direct-get subject that fetches the
// latest value stored under a registry key.
func DataKeyGet(key string) string {
	return "$JS.API.DIRECT.GET." + DataKeyStream + "." + DataKeySubject(key)
}

// DataKeyWriteFilter is the subject pattern under which sender may store
// keys wrapped for reader.
func DataKeyWriteFilter(sender, reader string) string {
	return DataKeySubject(DataKeyKey(sender, "*", reader))
}

// DataKeyReadFilter is the direct-get subject pattern through which reader
// fetches the keys wrapped for it, whoever sent them.
func DataKeyReadFilter(reader string) string {
	return DataKeyGet(DataKeyKey("*", "*", reader))
}
