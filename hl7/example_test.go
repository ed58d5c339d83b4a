package hl7_test

import (
	"fmt"
	"strings"
	"time"

	"phix.dev/phix/hl7"
)

func ExampleParse() {
	raw := "MSH|^~\\&|LAB|NORTH|EHR|HIE|20250314153045+0100||ORU^R01^ORU_R01|LAB1|P|2.5.1\r" +
		"PID|1||MRN1^^^NORTH^MR~ZZ9^^^NAT^NI||Doe^Jane^\"\"\r" +
		"OBX|1|ST|8251-1^Comment^LN||A \\T\\ B||||||F|||202503141530\r"
	m, err := hl7.Parse([]byte(raw))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Raw("MSH-9"), m.ControlID())
	fmt.Println(m.Get("PID-3[2].1"), m.Get("PID-5.2"), m.State("PID-5.3"))
	fmt.Println(m.Get("OBX-5"))
	t, _ := m.Time("OBX-14")
	fmt.Println(t)
	// Output:
	// ORU^R01^ORU_R01 LAB1
	// ZZ9 Jane null
	// A & B
	// 2025-03-14T15:30+01:00
}

func ExampleAck() {
	raw := "MSH|^~\\&|LAB|NORTH|EHR|HIE|20250314153045||ORU^R01^ORU_R01|LAB1|P|2.5.1\r" +
		"OBR|1|||X|||20230230\r"
	m, _ := hl7.Parse([]byte(raw))
	ack, _ := hl7.Ack(m, m.Validate(),
		hl7.WithControlID("ACK1"), hl7.WithTime(time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)))
	fmt.Println(strings.ReplaceAll(string(ack), "\r", "\n"))
	// Output:
	// MSH|^~\&|EHR|HIE|LAB|NORTH|20250314150000.0000+0000||ACK^R01^ACK|ACK1|P|2.5.1
	// MSA|AE|LAB1
	// ERR||OBR^1^7|102^Data type error^HL70357|E||||invalid date/time: day out of range for its month
}
