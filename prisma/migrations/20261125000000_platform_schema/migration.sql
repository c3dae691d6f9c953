-- The platform's tables as platform-schema.md defines them, in the form Prisma
-- Migrate generates from prisma/schema.prisma. The platform owns and writes
-- these tables; this migration exists for tests, the demo and local stacks.

-- CreateTable
CREATE TABLE "CoreNode" (
    "id" TEXT NOT NULL,
    "hostname" TEXT NOT NULL,
    "role" TEXT,
    "status" TEXT,
    "metrics" JSONB,
    "lastMetricsAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "CoreNode_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ProvisioningJob" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "resourceType" TEXT NOT NULL,
    "resourceId" TEXT,
    "tenantId" TEXT,
    "status" TEXT NOT NULL,
    "errorMessage" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ProvisioningJob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ShieldEvent" (
    "id" BIGSERIAL NOT NULL,
    "timestamp" TIMESTAMP(3) NOT NULL,
    "decision" TEXT,
    "policyId" TEXT,
    "tenantId" TEXT,
    "ip" TEXT,
    "path" TEXT,

    CONSTRAINT "ShieldEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ShieldPolicy" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "mode" TEXT,
    "tenantId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ShieldPolicy_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "GuardianFinding" (
    "id" TEXT NOT NULL,
    "severity" TEXT,
    "status" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "nodeId" TEXT,
    "tenantId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "resolvedAt" TIMESTAMP(3),

    CONSTRAINT "GuardianFinding_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Backup" (
    "id" TEXT NOT NULL,
    "resourceType" TEXT NOT NULL,
    "resourceId" TEXT,
    "status" TEXT NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "completedAt" TIMESTAMP(3),
    "sizeBytes" BIGINT,

    CONSTRAINT "Backup_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "CoreNode_hostname_key" ON "CoreNode"("hostname");
