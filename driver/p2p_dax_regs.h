/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * p2p-dax register map. Generated from hw/spec/regmap.py by
 * `python -m hw.spec.regmap --c-header`: do not edit by hand.
 */
#ifndef P2P_DAX_REGS_H
#define P2P_DAX_REGS_H

#define P2P_DAX_PROJECT_VERSION                      "0.1.0"
#define P2P_DAX_MAGIC                                0x70326478u
#define P2P_DAX_MAP_VERSION_MAJOR                    0
#define P2P_DAX_MAP_VERSION_MINOR                    2
#define P2P_DAX_MAP_VERSION_PATCH                    0
#define P2P_DAX_PCI_VENDOR_ID                        0x10ee
#define P2P_DAX_PCI_DEVICE_ID                        0x1e00
#define P2P_DAX_PCI_SUBSYSTEM_VENDOR_ID              0x10ee
#define P2P_DAX_PCI_SUBSYSTEM_ID                     0x7032
#define P2P_DAX_PCI_REVISION_ID                      0x00
#define P2P_DAX_PCI_CLASS_CODE                       0x058000
#define P2P_DAX_BAR0_SIZE                            0x10000u
#define P2P_DAX_BAR2_MIN_SIZE                        0x200000u
#define P2P_DAX_DMA_QUEUE_DEPTH                      16
#define P2P_DAX_DMA_RESULTS                          16
#define P2P_DAX_DMA_MAX_LENGTH                       0x1000000u
#define P2P_DAX_MSIX_VECTORS                         4

/* DMA_RESULT.status: P2P_DAX_DMA_STATUS_* in the uAPI header, p2p_dax_ioctl.h */

/* ID (ro): magic number identifying a p2p-dax endpoint */
#define P2P_DAX_REG_ID                               0x0000

/* VERSION (ro): gateware version: major, minor, patch */
#define P2P_DAX_REG_VERSION                          0x0004
#define P2P_DAX_VERSION_PATCH_SHIFT                  0
#define P2P_DAX_VERSION_PATCH_MASK                   0x000000ffu
#define P2P_DAX_VERSION_MINOR_SHIFT                  8
#define P2P_DAX_VERSION_MINOR_MASK                   0x0000ff00u
#define P2P_DAX_VERSION_MAJOR_SHIFT                  16
#define P2P_DAX_VERSION_MAJOR_MASK                   0x00ff0000u

/* CAPS (ro): capabilities */
#define P2P_DAX_REG_CAPS                             0x0008
#define P2P_DAX_CAPS_DMA_SHIFT                       1
#define P2P_DAX_CAPS_DMA_MASK                        0x00000002u
#define P2P_DAX_CAPS_MSIX_SHIFT                      2
#define P2P_DAX_CAPS_MSIX_MASK                       0x00000004u
#define P2P_DAX_CAPS_DATA_WIDTH_LOG2_SHIFT           8
#define P2P_DAX_CAPS_DATA_WIDTH_LOG2_MASK            0x00000f00u

/* SCRATCH (rw): free read/write register for tests */
#define P2P_DAX_REG_SCRATCH                          0x000c

/* BAR2_SIZE_LO (ro): BAR2 size in bytes, bits 31:0 */
#define P2P_DAX_REG_BAR2_SIZE_LO                     0x0010

/* BAR2_SIZE_HI (ro): BAR2 size in bytes, bits 63:32 */
#define P2P_DAX_REG_BAR2_SIZE_HI                     0x0014

/* MEM_SIZE_LO (ro): bytes of memory behind BAR2 from its start (no more than BAR2_SIZE), bits 31:0 */
#define P2P_DAX_REG_MEM_SIZE_LO                      0x0018

/* MEM_SIZE_HI (ro): bytes of memory behind BAR2, bits 63:32 */
#define P2P_DAX_REG_MEM_SIZE_HI                      0x001c

/* CFG (ro): link configuration the host set, as the hard IP reports it */
#define P2P_DAX_REG_CFG                              0x0020
#define P2P_DAX_CFG_MAX_PAYLOAD_SHIFT                0
#define P2P_DAX_CFG_MAX_PAYLOAD_MASK                 0x00000007u
#define P2P_DAX_CFG_MAX_READ_REQ_SHIFT               4
#define P2P_DAX_CFG_MAX_READ_REQ_MASK                0x00000070u
#define P2P_DAX_CFG_RCB_128_SHIFT                    8
#define P2P_DAX_CFG_RCB_128_MASK                     0x00000100u
#define P2P_DAX_CFG_EXT_TAGS_SHIFT                   9
#define P2P_DAX_CFG_EXT_TAGS_MASK                    0x00000200u

/* CTRL (wo): control strobes */
#define P2P_DAX_REG_CTRL                             0x0024
#define P2P_DAX_CTRL_CLEAR_COUNTERS_SHIFT            0
#define P2P_DAX_CTRL_CLEAR_COUNTERS_MASK             0x00000001u

/* DMA_BASE (ro): BAR0 offset of the DMA engine block (0 when absent) */
#define P2P_DAX_REG_DMA_BASE                         0x0028

/* ERR_UR (ro): non-posted requests answered with Unsupported Request (I/O, atomics, locked reads, unknown BAR or type, reads of BAR2 beyond MEM_SIZE) */
#define P2P_DAX_REG_ERR_UR                           0x0040

/* ERR_POSTED_DROPPED (ro): unsupported posted requests dropped (writes to a BAR the endpoint does not have, messages) */
#define P2P_DAX_REG_ERR_POSTED_DROPPED               0x0044

/* ERR_POISONED_DROPPED (ro): poisoned or discontinued writes dropped */
#define P2P_DAX_REG_ERR_POISONED_DROPPED             0x0048

/* ERR_MALFORMED_DROPPED (ro): requests longer than the largest payload the endpoint accepts, dropped (never stored) */
#define P2P_DAX_REG_ERR_MALFORMED_DROPPED            0x004c

/* STAT_WRITES (ro): memory write requests served */
#define P2P_DAX_REG_STAT_WRITES                      0x0050

/* STAT_READS (ro): memory read requests served */
#define P2P_DAX_REG_STAT_READS                       0x0054

/* STAT_CPLS (ro): completion TLPs sent */
#define P2P_DAX_REG_STAT_CPLS                        0x0058

/* ERR_UNBACKED_DROPPED (ro): writes to BAR2 beyond MEM_SIZE (no memory there), dropped */
#define P2P_DAX_REG_ERR_UNBACKED_DROPPED             0x005c

/* DMA_LOCAL (rw): staged descriptor: byte offset in BAR2 */
#define P2P_DAX_REG_DMA_LOCAL                        0x1000

/* DMA_BUS_LO (rw): staged descriptor: bus address, bits 31:0 */
#define P2P_DAX_REG_DMA_BUS_LO                       0x1004

/* DMA_BUS_HI (rw): staged descriptor: bus address, bits 63:32 */
#define P2P_DAX_REG_DMA_BUS_HI                       0x1008

/* DMA_LENGTH (rw): staged descriptor: bytes to move, 1 to DMA_MAX_LENGTH */
#define P2P_DAX_REG_DMA_LENGTH                       0x100c

/* DMA_CONTROL (rw): staged descriptor: direction, interrupt, identifier */
#define P2P_DAX_REG_DMA_CONTROL                      0x1010
#define P2P_DAX_DMA_CONTROL_FROM_BUS_SHIFT           0
#define P2P_DAX_DMA_CONTROL_FROM_BUS_MASK            0x00000001u
#define P2P_DAX_DMA_CONTROL_IRQ_SHIFT                1
#define P2P_DAX_DMA_CONTROL_IRQ_MASK                 0x00000002u
#define P2P_DAX_DMA_CONTROL_VECTOR_SHIFT             2
#define P2P_DAX_DMA_CONTROL_VECTOR_MASK              0x0000000cu
#define P2P_DAX_DMA_CONTROL_ID_SHIFT                 16
#define P2P_DAX_DMA_CONTROL_ID_MASK                  0xffff0000u

/* DMA_SUBMIT (rw): write: queue the staged descriptor (the value is ignored); read: free places in the queue */
#define P2P_DAX_REG_DMA_SUBMIT                       0x1014

/* DMA_SUBMITTED (ro): descriptors queued since reset */
#define P2P_DAX_REG_DMA_SUBMITTED                    0x1018

/* DMA_DONE (ro): descriptors ended since reset, successfully or not */
#define P2P_DAX_REG_DMA_DONE                         0x101c

/* DMA_TIMEOUT (rw): completion timeout in clock cycles, 1 to 2^31 - 1 */
#define P2P_DAX_REG_DMA_TIMEOUT                      0x1020

/* DMA_STATE (ro): engine state */
#define P2P_DAX_REG_DMA_STATE                        0x1024
#define P2P_DAX_DMA_STATE_BUSY_SHIFT                 0
#define P2P_DAX_DMA_STATE_BUSY_MASK                  0x00000001u
#define P2P_DAX_DMA_STATE_BUS_MASTER_SHIFT           1
#define P2P_DAX_DMA_STATE_BUS_MASTER_MASK            0x00000002u
#define P2P_DAX_DMA_STATE_ABORTING_SHIFT             2
#define P2P_DAX_DMA_STATE_ABORTING_MASK              0x00000004u

/* DMA_ERR_OVERFLOW (ro): descriptors submitted while the queue was full (dropped) */
#define P2P_DAX_REG_DMA_ERR_OVERFLOW                 0x1028

/* DMA_READS (ro): read requests outstanding on the bus */
#define P2P_DAX_REG_DMA_READS                        0x102c
#define P2P_DAX_DMA_READS_NOW_SHIFT                  0
#define P2P_DAX_DMA_READS_NOW_MASK                   0x000001ffu
#define P2P_DAX_DMA_READS_PEAK_SHIFT                 16
#define P2P_DAX_DMA_READS_PEAK_MASK                  0x01ff0000u

/* DMA_ABORT (wo): write (the value is ignored): end every descriptor submitted before the write with status ABORTED, in order, each with its result and its interrupt. A write packet already started goes out whole, later ones not; outstanding reads are dropped (a late completion is ignored, its tag rests as after DMA_TIMEOUT). Once DMA_DONE has caught up with that DMA_SUBMITTED, the engine sends nothing more for them */
#define P2P_DAX_REG_DMA_ABORT                        0x1030

/* DMA_RESULT0 (ro): how descriptor number k ended, for k % 16 == 0 */
#define P2P_DAX_REG_DMA_RESULT0                      0x1100
#define P2P_DAX_DMA_RESULT0_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT0_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT0_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT0_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT0_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT0_SEQ_MASK                 0xff000000u

/* DMA_RESULT1 (ro): how descriptor number k ended, for k % 16 == 1 */
#define P2P_DAX_REG_DMA_RESULT1                      0x1104
#define P2P_DAX_DMA_RESULT1_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT1_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT1_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT1_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT1_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT1_SEQ_MASK                 0xff000000u

/* DMA_RESULT2 (ro): how descriptor number k ended, for k % 16 == 2 */
#define P2P_DAX_REG_DMA_RESULT2                      0x1108
#define P2P_DAX_DMA_RESULT2_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT2_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT2_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT2_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT2_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT2_SEQ_MASK                 0xff000000u

/* DMA_RESULT3 (ro): how descriptor number k ended, for k % 16 == 3 */
#define P2P_DAX_REG_DMA_RESULT3                      0x110c
#define P2P_DAX_DMA_RESULT3_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT3_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT3_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT3_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT3_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT3_SEQ_MASK                 0xff000000u

/* DMA_RESULT4 (ro): how descriptor number k ended, for k % 16 == 4 */
#define P2P_DAX_REG_DMA_RESULT4                      0x1110
#define P2P_DAX_DMA_RESULT4_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT4_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT4_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT4_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT4_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT4_SEQ_MASK                 0xff000000u

/* DMA_RESULT5 (ro): how descriptor number k ended, for k % 16 == 5 */
#define P2P_DAX_REG_DMA_RESULT5                      0x1114
#define P2P_DAX_DMA_RESULT5_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT5_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT5_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT5_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT5_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT5_SEQ_MASK                 0xff000000u

/* DMA_RESULT6 (ro): how descriptor number k ended, for k % 16 == 6 */
#define P2P_DAX_REG_DMA_RESULT6                      0x1118
#define P2P_DAX_DMA_RESULT6_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT6_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT6_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT6_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT6_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT6_SEQ_MASK                 0xff000000u

/* DMA_RESULT7 (ro): how descriptor number k ended, for k % 16 == 7 */
#define P2P_DAX_REG_DMA_RESULT7                      0x111c
#define P2P_DAX_DMA_RESULT7_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT7_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT7_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT7_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT7_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT7_SEQ_MASK                 0xff000000u

/* DMA_RESULT8 (ro): how descriptor number k ended, for k % 16 == 8 */
#define P2P_DAX_REG_DMA_RESULT8                      0x1120
#define P2P_DAX_DMA_RESULT8_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT8_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT8_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT8_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT8_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT8_SEQ_MASK                 0xff000000u

/* DMA_RESULT9 (ro): how descriptor number k ended, for k % 16 == 9 */
#define P2P_DAX_REG_DMA_RESULT9                      0x1124
#define P2P_DAX_DMA_RESULT9_ID_SHIFT                 0
#define P2P_DAX_DMA_RESULT9_ID_MASK                  0x0000ffffu
#define P2P_DAX_DMA_RESULT9_STATUS_SHIFT             16
#define P2P_DAX_DMA_RESULT9_STATUS_MASK              0x000f0000u
#define P2P_DAX_DMA_RESULT9_SEQ_SHIFT                24
#define P2P_DAX_DMA_RESULT9_SEQ_MASK                 0xff000000u

/* DMA_RESULT10 (ro): how descriptor number k ended, for k % 16 == 10 */
#define P2P_DAX_REG_DMA_RESULT10                     0x1128
#define P2P_DAX_DMA_RESULT10_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT10_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT10_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT10_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT10_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT10_SEQ_MASK                0xff000000u

/* DMA_RESULT11 (ro): how descriptor number k ended, for k % 16 == 11 */
#define P2P_DAX_REG_DMA_RESULT11                     0x112c
#define P2P_DAX_DMA_RESULT11_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT11_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT11_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT11_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT11_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT11_SEQ_MASK                0xff000000u

/* DMA_RESULT12 (ro): how descriptor number k ended, for k % 16 == 12 */
#define P2P_DAX_REG_DMA_RESULT12                     0x1130
#define P2P_DAX_DMA_RESULT12_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT12_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT12_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT12_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT12_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT12_SEQ_MASK                0xff000000u

/* DMA_RESULT13 (ro): how descriptor number k ended, for k % 16 == 13 */
#define P2P_DAX_REG_DMA_RESULT13                     0x1134
#define P2P_DAX_DMA_RESULT13_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT13_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT13_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT13_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT13_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT13_SEQ_MASK                0xff000000u

/* DMA_RESULT14 (ro): how descriptor number k ended, for k % 16 == 14 */
#define P2P_DAX_REG_DMA_RESULT14                     0x1138
#define P2P_DAX_DMA_RESULT14_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT14_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT14_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT14_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT14_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT14_SEQ_MASK                0xff000000u

/* DMA_RESULT15 (ro): how descriptor number k ended, for k % 16 == 15 */
#define P2P_DAX_REG_DMA_RESULT15                     0x113c
#define P2P_DAX_DMA_RESULT15_ID_SHIFT                0
#define P2P_DAX_DMA_RESULT15_ID_MASK                 0x0000ffffu
#define P2P_DAX_DMA_RESULT15_STATUS_SHIFT            16
#define P2P_DAX_DMA_RESULT15_STATUS_MASK             0x000f0000u
#define P2P_DAX_DMA_RESULT15_SEQ_SHIFT               24
#define P2P_DAX_DMA_RESULT15_SEQ_MASK                0xff000000u

/* MSIX_VEC0_ADDR_LO (rw): MSI-X vector 0: message address, bits 31:0 (bits 1:0 stay 0) */
#define P2P_DAX_REG_MSIX_VEC0_ADDR_LO                0x8000

/* MSIX_VEC0_ADDR_HI (rw): MSI-X vector 0: message address, bits 63:32 */
#define P2P_DAX_REG_MSIX_VEC0_ADDR_HI                0x8004

/* MSIX_VEC0_DATA (rw): MSI-X vector 0: message data */
#define P2P_DAX_REG_MSIX_VEC0_DATA                   0x8008

/* MSIX_VEC0_CTRL (rw): MSI-X vector 0: vector control */
#define P2P_DAX_REG_MSIX_VEC0_CTRL                   0x800c
#define P2P_DAX_MSIX_VEC0_CTRL_MASK_SHIFT            0
#define P2P_DAX_MSIX_VEC0_CTRL_MASK_MASK             0x00000001u

/* MSIX_VEC1_ADDR_LO (rw): MSI-X vector 1: message address, bits 31:0 (bits 1:0 stay 0) */
#define P2P_DAX_REG_MSIX_VEC1_ADDR_LO                0x8010

/* MSIX_VEC1_ADDR_HI (rw): MSI-X vector 1: message address, bits 63:32 */
#define P2P_DAX_REG_MSIX_VEC1_ADDR_HI                0x8014

/* MSIX_VEC1_DATA (rw): MSI-X vector 1: message data */
#define P2P_DAX_REG_MSIX_VEC1_DATA                   0x8018

/* MSIX_VEC1_CTRL (rw): MSI-X vector 1: vector control */
#define P2P_DAX_REG_MSIX_VEC1_CTRL                   0x801c
#define P2P_DAX_MSIX_VEC1_CTRL_MASK_SHIFT            0
#define P2P_DAX_MSIX_VEC1_CTRL_MASK_MASK             0x00000001u

/* MSIX_VEC2_ADDR_LO (rw): MSI-X vector 2: message address, bits 31:0 (bits 1:0 stay 0) */
#define P2P_DAX_REG_MSIX_VEC2_ADDR_LO                0x8020

/* MSIX_VEC2_ADDR_HI (rw): MSI-X vector 2: message address, bits 63:32 */
#define P2P_DAX_REG_MSIX_VEC2_ADDR_HI                0x8024

/* MSIX_VEC2_DATA (rw): MSI-X vector 2: message data */
#define P2P_DAX_REG_MSIX_VEC2_DATA                   0x8028

/* MSIX_VEC2_CTRL (rw): MSI-X vector 2: vector control */
#define P2P_DAX_REG_MSIX_VEC2_CTRL                   0x802c
#define P2P_DAX_MSIX_VEC2_CTRL_MASK_SHIFT            0
#define P2P_DAX_MSIX_VEC2_CTRL_MASK_MASK             0x00000001u

/* MSIX_VEC3_ADDR_LO (rw): MSI-X vector 3: message address, bits 31:0 (bits 1:0 stay 0) */
#define P2P_DAX_REG_MSIX_VEC3_ADDR_LO                0x8030

/* MSIX_VEC3_ADDR_HI (rw): MSI-X vector 3: message address, bits 63:32 */
#define P2P_DAX_REG_MSIX_VEC3_ADDR_HI                0x8034

/* MSIX_VEC3_DATA (rw): MSI-X vector 3: message data */
#define P2P_DAX_REG_MSIX_VEC3_DATA                   0x8038

/* MSIX_VEC3_CTRL (rw): MSI-X vector 3: vector control */
#define P2P_DAX_REG_MSIX_VEC3_CTRL                   0x803c
#define P2P_DAX_MSIX_VEC3_CTRL_MASK_SHIFT            0
#define P2P_DAX_MSIX_VEC3_CTRL_MASK_MASK             0x00000001u

/* MSIX_PBA (ro): MSI-X Pending Bit Array: bit v is set while vector v waits, masked */
#define P2P_DAX_REG_MSIX_PBA                         0x9000

#endif /* P2P_DAX_REGS_H */
