package bwe

// Grouping of packets into send-time bursts, after libwebrtc's
// InterArrivalDelta (draft-ietf-rmcat-gcc-02, section 5.2). Delay is judged
// per group, not per packet: a video frame leaves as a burst and the
// packets of one burst say nothing about queueing relative to each other.
const (
	// groupLengthUS: packets sent within 5 ms of a group's first one belong
	// to it.
	groupLengthUS = 5_000
	// burstDeltaUS and maxBurstUS: a packet that arrives within 5 ms of the
	// previous one and sooner than its send spacing explains (a queue
	// draining) joins the group, as long as the group has not been
	// arriving for 100 ms.
	burstDeltaUS = 5_000
	maxBurstUS   = 100_000
	// arrivalOffsetUS: if the remote clock moved 3 s more than ours between
	// two groups, the remote clock jumped; start over.
	arrivalOffsetUS = 3_000_000
	// reorderedReset: this many groups in a row arriving before their
	// predecessor means the arrival clock went backwards; start over.
	reorderedReset = 3
)

type packetGroup struct {
	size          int64
	firstSendUS   int64
	sendUS        int64 // latest send time in the group
	firstArriveUS int64
	completeUS    int64 // arrival of the group's last packet
	systemUS      int64 // local time its last packet's feedback came
	started       bool
}

type interArrival struct {
	cur, prev packetGroup
	reordered int
	resets    int // times the arrival clock was found to jump
}

func (ia *interArrival) reset() { *ia = interArrival{resets: ia.resets + 1} }

// add feeds one received packet in send order. When the packet starts a
// new group and there was a complete group before the current one, it
// returns the send and arrival spacing between those two groups, and this
// packet's arrival as the time of the measurement.
func (ia *interArrival) add(sendUS, arriveUS, systemUS int64, size int) (sendDelta, arriveDelta, groupArriveUS int64, ok bool) {
	switch {
	case !ia.cur.started:
		ia.cur = packetGroup{firstSendUS: sendUS, sendUS: sendUS, firstArriveUS: arriveUS}
	case sendUS < ia.cur.firstSendUS:
		// Sent before the group under construction: its feedback came late
		// or out of order. The groups it belonged to are gone.
		return 0, 0, 0, false
	case ia.newGroup(sendUS, arriveUS):
		if ia.prev.started {
			sendDelta = ia.cur.sendUS - ia.prev.sendUS
			arriveDelta = ia.cur.completeUS - ia.prev.completeUS
			systemDelta := ia.cur.systemUS - ia.prev.systemUS
			if arriveDelta-systemDelta >= arrivalOffsetUS {
				ia.reset()
				return 0, 0, 0, false
			}
			if arriveDelta < 0 {
				ia.reordered++
				if ia.reordered >= reorderedReset {
					ia.reset()
				}
				return 0, 0, 0, false
			}
			ia.reordered = 0
			groupArriveUS = arriveUS
			ok = true
		}
		ia.prev = ia.cur
		ia.cur = packetGroup{firstSendUS: sendUS, sendUS: sendUS, firstArriveUS: arriveUS}
	default:
		ia.cur.sendUS = max(ia.cur.sendUS, sendUS)
	}
	ia.cur.size += int64(size)
	ia.cur.completeUS = arriveUS
	ia.cur.systemUS = systemUS
	ia.cur.started = true
	return sendDelta, arriveDelta, groupArriveUS, ok
}

func (ia *interArrival) newGroup(sendUS, arriveUS int64) bool {
	if ia.belongsToBurst(sendUS, arriveUS) {
		return false
	}
	return sendUS-ia.cur.firstSendUS > groupLengthUS
}

func (ia *interArrival) belongsToBurst(sendUS, arriveUS int64) bool {
	arriveDelta := arriveUS - ia.cur.completeUS
	sendDelta := sendUS - ia.cur.sendUS
	if sendDelta == 0 {
		return true
	}
	propagation := arriveDelta - sendDelta
	return propagation < 0 && arriveDelta <= burstDeltaUS && arriveUS-ia.cur.firstArriveUS < maxBurstUS
}
