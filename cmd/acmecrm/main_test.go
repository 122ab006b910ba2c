package main

import (
	"testing"

	"github.com/acmecrm/acmecrm/internal/infratest"
)

func TestMain(m *testing.M) { infratest.Main(m) }
