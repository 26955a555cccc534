"""What runs the Verilog book from Python: `driver` (file-driven runs of whole flows, for volume
and the differential tests), `bridge` (the process that serves a hardware ring pair) and
`bridge_dma` (the cocotb module inside Icarus that plays the card's DMA engine for the bridge)."""
